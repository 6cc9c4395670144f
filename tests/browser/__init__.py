"""Real-browser tests: JupyterLab in Debian's Chromium, driven by playwright.

A package, so that its fixtures can be package-scoped: playwright's sync API runs an event loop
in the main thread while it is open, which breaks asyncio tests and notebooks that the same
process runs after it. Package scope closes it as soon as the last browser test is done.
"""
