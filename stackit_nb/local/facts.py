"""The scripted engine's small table of facts: what it may say about a topic, a city or a recipe.

The scripted engine is not a model: it knows exactly what is written here and nothing else, and it
says so for every other topic instead of inventing. The topics are the ones the tutorials and
quick experiments ask about (nature, science basics, the vocabulary of language models and of
this toolkit). The text is written for this project from general textbook knowledge; city
figures are rounded values from each city's Wikipedia article (population of the city proper,
latest official estimate as of 2024), so they are right in size, not exact to the person.

Each topic has plain sentences (most important first), sentences for a young audience (short
words, short sentences), a gist of at most six words for tight word limits, and list points
written as "Label: detail" (a list shows them as they are; a table splits them at the colon).
When two topics match equally, the one listed first wins: the general ones (language models,
tokens, machine learning, ...) come last, so "Why do LLMs hallucinate?" is about hallucinations.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """What the engine may say about one topic."""

    keys: tuple[str, ...]  # phrases that name the topic ("sky blue", "rayleigh scattering")
    name: str  # the topic as a noun phrase ("the colour of the sky")
    gist: str  # at most six words, a full sentence
    sentences: tuple[str, ...]
    simple: tuple[str, ...]
    points: tuple[str, ...]
    word: str = ""  # a one-word answer, when one fits


TOPICS: tuple[Topic, ...] = (
    Topic(
        keys=("sky blue", "blue sky", "sky colour", "sky color", "rayleigh scattering"),
        name="the colour of the sky",
        gist="Air scatters blue light the most.",
        sentences=(
            "The sky looks blue because the molecules of the air scatter short, blue wavelengths "
            "of sunlight much more strongly than long, red ones (Rayleigh scattering).",
            "That scattered blue light reaches your eyes from every direction of the sky.",
            "At sunrise and sunset the light travels through much more air, so most of the blue "
            "is scattered away and the reds and oranges are left.",
            "Violet light is scattered even more, but sunlight holds less of it and our eyes are "
            "less sensitive to it, so the sky looks blue rather than violet.",
        ),
        simple=(
            "Sunlight is a mix of all colours.",
            "The air bounces blue light around much more than red light.",
            "So blue light comes at you from all over the sky, and the sky looks blue.",
        ),
        points=(
            "Sunlight: white light is a mix of all colours",
            "Scattering: air molecules scatter blue light far more than red light",
            "Direction: scattered blue light reaches us from the whole sky",
            "Sunsets: long paths through the air leave mostly red and orange light",
        ),
        word="Scattering",
    ),
    Topic(
        keys=("photosynthesis",),
        name="photosynthesis",
        gist="Plants turn light into sugar.",
        sentences=(
            "Photosynthesis is how plants, algae and some bacteria turn light into chemical "
            "energy.",
            "In their leaves, chlorophyll captures sunlight and uses its energy to combine carbon "
            "dioxide from the air with water into sugar.",
            "Oxygen is released as a by-product, which is where most of the oxygen we breathe "
            "comes from.",
            "The sugar feeds the plant's growth and, through food chains, almost every other "
            "living thing.",
        ),
        simple=(
            "Plants make their own food from sunlight.",
            "Their green leaves take in light, air and water and turn them into sugar.",
            "While they do it, they give off the oxygen we breathe.",
        ),
        points=(
            "Light: chlorophyll in the leaves captures sunlight",
            "Inputs: carbon dioxide from the air and water from the soil",
            "Output: sugar that the plant uses to grow",
            "By-product: oxygen released into the air",
        ),
        word="Light",
    ),
    Topic(
        keys=("rate limit", "rate limiting", "429", "too many request"),
        name="rate limits",
        gist="A cap on requests per minute.",
        sentences=(
            "A rate limit caps how many requests or tokens a client may use in a given time, "
            "for example per minute.",
            "It keeps a shared service fair and stable when many people use it at once.",
            "When you go over the limit, the server answers with HTTP status 429 (Too Many "
            "Requests), often with a Retry-After header that says how long to wait.",
            "Clients handle this by waiting and retrying with growing pauses, or by sending fewer "
            "requests at a time.",
        ),
        simple=(
            "A rate limit says how often you may ask a computer for something.",
            "It is like a queue rule that lets everyone have a turn.",
            "If you ask too often, you are told to wait a moment and try again.",
        ),
        points=(
            "What: a cap on requests or tokens per minute",
            "Why: it keeps a shared service fair and stable",
            "Signal: HTTP status 429 with a Retry-After header",
            "Handling: wait, retry with growing pauses, send fewer requests at once",
        ),
        word="Throttling",
    ),
    Topic(
        keys=("river", "landscape"),
        name="rivers",
        gist="Flowing water carves valleys over time.",
        sentences=(
            "Rivers shape a landscape mainly by erosion: flowing water and the sand and stones it "
            "carries wear away rock and soil.",
            "Over thousands of years this cuts valleys, and in hard rock it can carve deep "
            "gorges and canyons.",
            "Where a river slows down it drops its load, building flood plains, sandbanks and, "
            "at its mouth, deltas.",
            "On flat ground a river swings from side to side in bends called meanders, and "
            "floods spread fertile soil across the plain.",
        ),
        simple=(
            "A river is water that flows downhill to a lake or the sea.",
            "Its water carries tiny bits of sand and stone that slowly scrape the ground.",
            "Over a very long time, this digs valleys and builds new land where the river slows "
            "down.",
        ),
        points=(
            "Erosion: moving water and its sediment wear away rock and soil",
            "Valleys: rivers cut V-shaped valleys and, in hard rock, gorges",
            "Deposition: slow water drops sand and mud on flood plains",
            "Meanders: on flat ground rivers wind in wide bends",
            "Deltas: sediment piles up where a river meets the sea",
        ),
        word="Erosion",
    ),
    Topic(
        keys=("delta",),
        name="a river delta",
        gist="Land built from a river's sediment.",
        sentences=(
            "A delta is land built up where a river flows into a sea or lake and drops the sand "
            "and mud it carries.",
            "Because the river slows down at its mouth, the sediment settles and the river splits "
            "into many smaller channels.",
            "Deltas are often very fertile; the Nile delta and the Mississippi delta are famous "
            "examples.",
        ),
        simple=(
            "A delta is new land at the end of a river.",
            "The river slows down at the sea and drops the mud it carries.",
            "The mud piles up, and the river splits into many small streams.",
        ),
        points=(
            "Place: where a river meets a sea or lake",
            "Cause: the river slows and drops its sediment",
            "Shape: the river splits into many channels",
            "Examples: the Nile delta and the Mississippi delta",
        ),
        word="Sediment",
    ),
    Topic(
        keys=("embedding", "vector representation"),
        name="embeddings",
        gist="Text turned into comparable number lists.",
        sentences=(
            "An embedding is a list of numbers (a vector) that represents the meaning of a piece "
            "of text.",
            "An embedding model is trained so that texts with similar meaning get vectors that "
            "point in similar directions.",
            "Comparing two vectors, usually with cosine similarity, then tells you how close two "
            "texts are in meaning.",
            "This is what semantic search and retrieval-augmented generation use to find the "
            "documents that fit a question.",
        ),
        simple=(
            "An embedding turns words into a long list of numbers.",
            "Sentences that mean similar things get similar lists.",
            "A computer can then find texts that fit together by comparing the lists.",
        ),
        points=(
            "Vector: a list of numbers for one text",
            "Similarity: close meanings give vectors pointing the same way",
            "Measure: cosine similarity compares two vectors",
            "Use: semantic search and retrieval-augmented generation",
        ),
        word="Vectors",
    ),
    Topic(
        keys=("glacier",),
        name="glaciers",
        gist="Slow rivers of ice flowing downhill.",
        sentences=(
            "A glacier is a large mass of ice that forms where more snow falls each year than "
            "melts, so the snow packs down into ice.",
            "Glaciers move slowly downhill under their own weight: the ice deforms like a very "
            "thick fluid and slides over meltwater at its base.",
            "As they move, they grind the rock beneath them and carve U-shaped valleys.",
            "Most glaciers move a few centimetres to a few metres a day.",
        ),
        simple=(
            "A glacier is a huge, slow river of ice.",
            "It forms where snow piles up year after year and turns into ice.",
            "It is so heavy that it slides downhill very slowly and scrapes the rock below.",
        ),
        points=(
            "Formation: snow that does not melt packs into ice",
            "Movement: the ice flows and slides downhill under its own weight",
            "Speed: usually centimetres to metres a day",
            "Landforms: glaciers carve U-shaped valleys",
        ),
        word="Ice",
    ),
    Topic(
        keys=("desert",),
        name="deserts",
        gist="Very dry land with little rain.",
        sentences=(
            "A desert is a region that gets very little rain, usually less than 250 millimetres "
            "a year.",
            "Deserts can be hot like the Sahara or cold like the Gobi and Antarctica.",
            "Their plants and animals are adapted to drought, for example by storing water or "
            "being active at night.",
        ),
        simple=(
            "A desert is a very dry place where it hardly ever rains.",
            "Some deserts are hot and sandy, and some are cold.",
            "Plants and animals there have clever ways to save water.",
        ),
        points=(
            "Rain: usually less than 250 mm a year",
            "Types: hot deserts like the Sahara, cold ones like the Gobi",
            "Life: plants and animals adapted to drought",
        ),
        word="Dry",
    ),
    Topic(
        keys=("volcano",),
        name="volcanoes",
        gist="Openings where molten rock erupts.",
        sentences=(
            "A volcano is an opening in the Earth's crust where molten rock, gas and ash escape "
            "from below.",
            "Most volcanoes lie where tectonic plates meet, such as around the Pacific's Ring of "
            "Fire.",
            "Eruptions build mountains of lava and ash, and they can be gentle flows or violent "
            "explosions.",
        ),
        simple=(
            "A volcano is a mountain with a hole that leads deep into the Earth.",
            "Hot melted rock called lava can come out of it.",
            "Some volcanoes ooze lava slowly, and some explode.",
        ),
        points=(
            "Cause: molten rock rises through the crust",
            "Location: mostly where tectonic plates meet",
            "Eruptions: from gentle lava flows to explosions",
        ),
        word="Magma",
    ),
    Topic(
        keys=("forest",),
        name="forests",
        gist="Large areas covered mainly by trees.",
        sentences=(
            "A forest is a large area covered mainly by trees.",
            "Forests store large amounts of carbon, make oxygen and are home to most of the "
            "species that live on land.",
            "There are tropical rainforests, temperate forests and the cold boreal forests of the "
            "north.",
        ),
        simple=(
            "A forest is a big place full of trees.",
            "Many animals and plants live there.",
            "Trees clean the air and give off oxygen.",
        ),
        points=(
            "Definition: land covered mainly by trees",
            "Role: forests store carbon and make oxygen",
            "Types: tropical, temperate and boreal forests",
        ),
        word="Trees",
    ),
    Topic(
        keys=("coral reef", "coral"),
        name="coral reefs",
        gist="Undersea structures built by tiny corals.",
        sentences=(
            "Coral reefs are underwater structures built over centuries by colonies of tiny "
            "animals called coral polyps.",
            "They grow in warm, shallow, clear seas and shelter about a quarter of all marine "
            "species.",
            "Warmer and more acidic oceans stress them, which shows as coral bleaching.",
        ),
        simple=(
            "A coral reef is built by tiny sea animals called corals.",
            "It grows in warm, clear water.",
            "Lots of colourful fish live there.",
        ),
        points=(
            "Builders: colonies of coral polyps",
            "Where: warm, shallow, clear seas",
            "Life: home to about a quarter of marine species",
            "Threat: bleaching in warmer, more acidic water",
        ),
        word="Corals",
    ),
    Topic(
        keys=("cave",),
        name="caves",
        gist="Natural hollows, often dissolved in limestone.",
        sentences=(
            "A cave is a natural hollow in the ground large enough for a person to enter.",
            "Most large caves form in limestone, which slightly acidic rainwater dissolves over "
            "thousands of years.",
            "Dripping water leaves minerals behind that grow into stalactites and stalagmites.",
        ),
        simple=(
            "A cave is a big natural hole in rock.",
            "Water slowly melts away some kinds of rock and makes caves.",
            "Drips of water can build stone icicles inside.",
        ),
        points=(
            "Definition: a natural hollow large enough to enter",
            "Formation: rainwater dissolves limestone",
            "Features: stalactites and stalagmites",
        ),
        word="Limestone",
    ),
    Topic(
        keys=("island",),
        name="islands",
        gist="Land surrounded on all sides by water.",
        sentences=(
            "An island is a piece of land surrounded by water and smaller than a continent.",
            "Islands form in several ways: volcanoes rising from the sea floor, coral reefs "
            "growing upward, or parts of a coast cut off by rising water.",
            "Being isolated, islands often have plants and animals found nowhere else.",
        ),
        simple=(
            "An island is land with water all around it.",
            "Some islands are the tops of volcanoes under the sea.",
            "Special animals live on some islands and nowhere else.",
        ),
        points=(
            "Definition: land surrounded by water, smaller than a continent",
            "Origins: volcanoes, coral reefs, or coasts cut off by the sea",
            "Life: many species found nowhere else",
        ),
        word="Land",
    ),
    Topic(
        keys=("tundra",),
        name="the tundra",
        gist="Cold, treeless land over frozen ground.",
        sentences=(
            "The tundra is a cold, treeless region in the far north and on high mountains.",
            "Below the surface the ground stays frozen all year (permafrost), so trees cannot "
            "take root.",
            "Mosses, lichens and low shrubs grow there during the short summer.",
        ),
        simple=(
            "The tundra is a cold place with no trees.",
            "The ground under it stays frozen all year.",
            "Only small plants like moss grow there.",
        ),
        points=(
            "Climate: long cold winters and short summers",
            "Ground: permafrost that stays frozen all year",
            "Plants: mosses, lichens and low shrubs",
        ),
        word="Permafrost",
    ),
    Topic(
        keys=("wetland", "marsh", "swamp"),
        name="wetlands",
        gist="Land soaked with water much of the year.",
        sentences=(
            "Wetlands are areas where water covers the soil or sits just below it for much of "
            "the year, such as marshes, swamps and bogs.",
            "They filter water, soak up floods and store a lot of carbon.",
            "Many birds, fish and amphibians depend on them.",
        ),
        simple=(
            "A wetland is land that is wet and soggy most of the time.",
            "It cleans water and soaks up floods like a sponge.",
            "Many birds and frogs live there.",
        ),
        points=(
            "Types: marshes, swamps and bogs",
            "Water: filter water and soak up floods",
            "Carbon: peat bogs store a lot of carbon",
            "Life: homes for birds, fish and amphibians",
        ),
        word="Marsh",
    ),
    Topic(
        keys=("canyon", "gorge"),
        name="canyons",
        gist="Deep valleys cut by rivers.",
        sentences=(
            "A canyon is a deep, narrow valley with steep sides, usually cut by a river over "
            "millions of years.",
            "The rock layers in its walls record the history of the land.",
            "The Grand Canyon in Arizona, carved by the Colorado River, is the best-known example.",
        ),
        simple=(
            "A canyon is a very deep valley with steep walls.",
            "A river cut it into the rock over a very long time.",
            "The stripes in its walls are layers of old rock.",
        ),
        points=(
            "Shape: a deep, narrow valley with steep sides",
            "Cause: a river cutting into rock for millions of years",
            "Example: the Grand Canyon, cut by the Colorado River",
        ),
        word="Erosion",
    ),
    Topic(
        keys=("dune",),
        name="sand dunes",
        gist="Hills of sand shaped by wind.",
        sentences=(
            "A dune is a hill of loose sand built up by the wind.",
            "Wind pushes sand up the gentle side of the dune until it slides down the steep side, "
            "so dunes slowly move.",
            "Dunes form in deserts and along sandy coasts.",
        ),
        simple=(
            "A dune is a hill made of sand.",
            "The wind blows the sand into piles.",
            "Dunes slowly move as the wind keeps blowing.",
        ),
        points=(
            "Material: loose sand",
            "Cause: wind piles the sand up",
            "Movement: dunes creep forward with the wind",
            "Places: deserts and sandy coasts",
        ),
        word="Sand",
    ),
    Topic(
        keys=("tide",),
        name="tides",
        gist="The Moon's pull raises the sea.",
        sentences=(
            "Tides are the regular rise and fall of the sea, mostly caused by the Moon's "
            "gravity pulling on the oceans.",
            "Most coasts have two high tides and two low tides about every 25 hours.",
            "When the Sun and Moon line up, at new and full moon, the tides are strongest "
            "(spring tides).",
        ),
        simple=(
            "Tides are the sea going up and down every day.",
            "The Moon pulls on the water and makes it bulge.",
            "Most beaches get two high tides a day.",
        ),
        points=(
            "Cause: mostly the Moon's gravity",
            "Rhythm: two highs and two lows about every 25 hours",
            "Spring tides: strongest when Sun and Moon line up",
        ),
        word="Moon",
    ),
    Topic(
        keys=("retrieval augmented generation", "rag", "retrieval augment"),
        name="retrieval-augmented generation",
        gist="Retrieve documents, then let the model answer.",
        sentences=(
            "Retrieval-augmented generation (RAG) first searches a document collection for the "
            "passages that fit a question, then asks a language model to answer from them.",
            "The retrieved passages go into the prompt, so the answer can rest on your own, "
            "current documents instead of only on what the model learned in training.",
            "Good answers name their sources, and say so when the documents do not contain the "
            "answer.",
        ),
        simple=(
            "First the computer looks up the pages that fit your question.",
            "Then it reads those pages to the language model.",
            "The model answers using what the pages say.",
        ),
        points=(
            "Retrieve: find the passages that fit the question",
            "Augment: put those passages into the prompt",
            "Generate: the model answers from the passages",
            "Cite: name the sources the answer used",
        ),
        word="Retrieval",
    ),
    Topic(
        keys=("moon",),
        name="the Moon",
        gist="Earth's only natural satellite.",
        sentences=(
            "The Moon is Earth's only natural satellite, about 384,000 kilometres away.",
            "It shines by reflecting sunlight, and its phases show how much of its lit half we "
            "see as it orbits Earth about every 29.5 days.",
            "Its gravity is the main cause of the ocean tides.",
        ),
        simple=(
            "The Moon goes around the Earth.",
            "It does not make its own light; it reflects sunlight.",
            "It seems to change shape as we see more or less of its sunny side.",
        ),
        points=(
            "Distance: about 384,000 km from Earth",
            "Light: reflected sunlight",
            "Phases: a cycle of about 29.5 days",
            "Tides: its gravity drives the ocean tides",
        ),
        word="Satellite",
    ),
    Topic(
        keys=("gravity", "gravitation"),
        name="gravity",
        gist="The pull between masses.",
        sentences=(
            "Gravity is the attraction between all things that have mass.",
            "It keeps us on the ground, holds the Moon in orbit around Earth and Earth around "
            "the Sun.",
            "Near Earth's surface it makes falling objects speed up by about 9.8 metres per "
            "second every second.",
        ),
        simple=(
            "Gravity is a pull that makes things fall down.",
            "The Earth pulls on everything, and that keeps us on the ground.",
            "It also keeps the Moon going around the Earth.",
        ),
        points=(
            "Definition: attraction between masses",
            "Orbits: keeps the Moon and planets in orbit",
            "On Earth: falling objects gain about 9.8 m/s every second",
        ),
        word="Attraction",
    ),
    Topic(
        keys=("water cycle", "rain", "precipitation"),
        name="the water cycle",
        gist="Water evaporates, condenses and falls.",
        sentences=(
            "In the water cycle, the Sun's heat evaporates water from oceans, lakes and plants.",
            "The vapour rises, cools and condenses into clouds, and falls back as rain or snow.",
            "Rivers and groundwater carry it back to the sea, and the cycle starts again.",
        ),
        simple=(
            "The Sun warms water, and it rises into the air.",
            "High up it cools down and makes clouds.",
            "Then it falls as rain and flows back to the sea.",
        ),
        points=(
            "Evaporation: the Sun turns water into vapour",
            "Condensation: vapour cools into clouds",
            "Precipitation: rain and snow fall",
            "Collection: rivers carry water back to the sea",
        ),
        word="Evaporation",
    ),
    Topic(
        keys=("rainbow",),
        name="rainbows",
        gist="Sunlight split by raindrops.",
        sentences=(
            "A rainbow appears when sunlight enters raindrops, bends, reflects inside them and "
            "leaves split into its colours.",
            "Each colour bends by a slightly different angle, which spreads them into a band.",
            "You see one with the Sun behind you and rain in front of you.",
        ),
        simple=(
            "Sunlight is made of many colours.",
            "Raindrops bend the light and split the colours apart.",
            "You see a rainbow when the Sun is behind you and rain is in front.",
        ),
        points=(
            "Light: sunlight holds all colours",
            "Raindrops: bend and reflect the light",
            "Angle: each colour leaves at a slightly different angle",
        ),
        word="Refraction",
    ),
    Topic(
        keys=("earthquake",),
        name="earthquakes",
        gist="Sudden shaking as rock slips.",
        sentences=(
            "An earthquake is a sudden shaking of the ground when rocks along a fault slip past "
            "each other.",
            "Stress builds up slowly as tectonic plates move, then releases in seconds as "
            "seismic waves.",
            "Their size is measured on the moment magnitude scale.",
        ),
        simple=(
            "An earthquake is when the ground suddenly shakes.",
            "Huge pieces of the Earth's crust push on each other and slip.",
            "The shaking spreads out like ripples in a pond.",
        ),
        points=(
            "Cause: rocks slipping along a fault",
            "Energy: released as seismic waves",
            "Size: moment magnitude scale",
        ),
        word="Faults",
    ),
    Topic(
        keys=("dna",),
        name="DNA",
        gist="The molecule that stores genetic instructions.",
        sentences=(
            "DNA is the molecule that stores the genetic instructions of living things.",
            "It is a double helix of two strands, and the order of its four bases (A, C, G and "
            "T) spells out genes.",
            "Cells copy their DNA before they divide, so each new cell gets the instructions.",
        ),
        simple=(
            "DNA is like a recipe book inside every cell.",
            "It tells the body how to grow and work.",
            "It looks like a twisted ladder.",
        ),
        points=(
            "Role: stores genetic instructions",
            "Shape: a double helix",
            "Code: four bases, A, C, G and T",
        ),
        word="Genes",
    ),
    Topic(
        keys=("black hole",),
        name="black holes",
        gist="Gravity so strong light cannot escape.",
        sentences=(
            "A black hole is a region of space where gravity is so strong that nothing, not even "
            "light, can escape.",
            "Many form when a very massive star collapses at the end of its life.",
            "Its boundary is called the event horizon.",
        ),
        simple=(
            "A black hole is a place in space with a super strong pull.",
            "Not even light can get out.",
            "Some form when giant stars collapse.",
        ),
        points=(
            "Gravity: nothing, not even light, escapes",
            "Origin: collapse of very massive stars",
            "Boundary: the event horizon",
        ),
        word="Gravity",
    ),
    Topic(
        keys=("internet",),
        name="the internet",
        gist="A worldwide network of networks.",
        sentences=(
            "The internet is a worldwide network of computer networks that exchange data using "
            "shared rules called protocols, such as TCP/IP.",
            "Data travels in small packets that routers pass along towards their destination.",
            "The web, email and video calls are services that run on top of it.",
        ),
        simple=(
            "The internet connects computers all over the world.",
            "Messages travel in tiny pieces and are put back together at the end.",
            "Websites and video calls use it.",
        ),
        points=(
            "Structure: a network of networks",
            "Rules: protocols such as TCP/IP",
            "Packets: data travels in small pieces",
            "Services: the web, email and video calls",
        ),
        word="Network",
    ),
    Topic(
        keys=("structured output", "json schema", "json mode"),
        name="structured output",
        gist="Replies that follow a JSON schema.",
        sentences=(
            "Structured output asks a model to answer in JSON that follows a given schema.",
            "The server constrains generation so that the reply parses and has the required "
            "fields and types.",
            "Valid JSON is not the same as correct content: the values still need checking.",
        ),
        simple=(
            "Structured output means the answer comes as a filled-in form.",
            "Every box of the form gets the right kind of value.",
            "The values can still be wrong, so check them.",
        ),
        points=(
            "Request: a JSON schema in response_format",
            "Guarantee: the reply parses and fits the schema",
            "Caveat: valid does not mean correct",
        ),
        word="JSON",
    ),
    Topic(
        keys=("streaming",),
        name="streaming",
        gist="Showing a reply while it is written.",
        sentences=(
            "Streaming sends a model's reply piece by piece while it is being generated, instead "
            "of all at once at the end.",
            "The first words appear after a short time to first token, which makes long answers "
            "feel much faster.",
            "The pieces arrive as server-sent events and are joined into the full reply.",
        ),
        simple=(
            "Streaming shows the answer while it is being written.",
            "You do not have to wait for the whole answer.",
            "The words appear a few at a time.",
        ),
        points=(
            "Idea: send the reply piece by piece",
            "Benefit: the first words show up quickly",
            "Format: server-sent events",
        ),
        word="Chunks",
    ),
    Topic(
        keys=("context window", "context length", "context limit"),
        name="the context window",
        gist="How much text a model reads.",
        sentences=(
            "A model's context window is the most tokens it can take in one request: the prompt "
            "and the reply together.",
            "Everything the model should consider, such as the conversation so far or retrieved "
            "documents, has to fit into it.",
            "A request over the limit is refused, so long chats and documents are shortened, "
            "split or summarised first.",
        ),
        simple=(
            "A model can only read so much text at once.",
            "That amount is its context window.",
            "Longer texts have to be cut into parts.",
        ),
        points=(
            "Size: the most tokens one request may hold",
            "Contents: prompt, history and documents together with the reply",
            "Over the limit: the request is refused",
            "Remedies: shorten, split or summarise",
        ),
        word="Tokens",
    ),
    Topic(
        keys=("hallucination", "hallucinate"),
        name="hallucinations",
        gist="Fluent answers that are not true.",
        sentences=(
            "A language model hallucinates when it states something false in fluent, confident "
            "words, such as an invented source or a wrong number.",
            "It happens because the model predicts likely text, not checked facts.",
            "Grounding answers in retrieved documents, asking for sources and checking important "
            "claims reduce the risk.",
        ),
        simple=(
            "Sometimes a language model makes things up.",
            "It sounds sure, but it is wrong.",
            "So always check important answers.",
        ),
        points=(
            "What: false statements in confident words",
            "Why: the model predicts likely text, not facts",
            "Remedies: retrieval, sources and checking",
        ),
        word="Fabrication",
    ),
    Topic(
        keys=("prompt engineering", "system prompt", "few shot"),
        name="prompt engineering",
        gist="Writing instructions a model follows well.",
        sentences=(
            "Prompt engineering is the craft of writing instructions that get a model to do what "
            "you want.",
            "Clear tasks, the audience and format you want, a few examples and the relevant "
            "context all help.",
            "A system prompt sets rules that hold for the whole conversation.",
        ),
        simple=(
            "A prompt is what you ask a model.",
            "Clear and exact questions get better answers.",
            "Examples help the model see what you mean.",
        ),
        points=(
            "Task: say exactly what to do",
            "Format: name the form and length of the answer",
            "Examples: show one or two good answers",
            "System prompt: rules for the whole conversation",
        ),
        word="Instructions",
    ),
    Topic(
        keys=("fine tuning", "fine tune", "finetuning"),
        name="fine-tuning",
        gist="Training a model further on examples.",
        sentences=(
            "Fine-tuning trains an existing model further on a smaller set of examples, so that it "
            "adopts their style, format or domain.",
            "It changes the model's weights, unlike a prompt, which only changes one request.",
            "For knowledge that changes often, retrieval is usually simpler than fine-tuning.",
        ),
        simple=(
            "Fine-tuning means teaching a trained model a bit more.",
            "You show it many examples of what you want.",
            "Afterwards it answers more like those examples.",
        ),
        points=(
            "What: more training on your own examples",
            "Changes: the model's weights",
            "Good for: style, format, a narrow domain",
            "Not for: facts that change often",
        ),
        word="Training",
    ),
    Topic(
        keys=("transformer",),
        name="transformers",
        gist="The network behind today's language models.",
        sentences=(
            "The transformer is the neural network architecture behind today's language models.",
            "Its attention mechanism lets every token weigh every other token of the input, so it "
            "can use context from anywhere in a text.",
            'It was introduced in 2017 in the paper "Attention Is All You Need".',
        ),
        simple=(
            "A transformer is a kind of computer brain for text.",
            "It looks at all the words at once to see how they fit together.",
            "Most chatbots are built on it.",
        ),
        points=(
            "Role: the architecture of modern language models",
            "Attention: each token weighs all the others",
            "Origin: the 2017 paper Attention Is All You Need",
        ),
        word="Attention",
    ),
    Topic(
        keys=("quantum computing", "quantum computer"),
        name="quantum computing",
        gist="Computing with qubits and superposition.",
        sentences=(
            "Quantum computing uses qubits, which can be in a superposition of 0 and 1, and "
            "entanglement between them to compute.",
            "For some problems, such as simulating molecules or factoring large numbers, quantum "
            "algorithms could be much faster than classical ones.",
            "Today's machines are small and error-prone, so practical uses are still limited.",
        ),
        simple=(
            "A quantum computer uses tiny particles to calculate.",
            "Its bits can be 0 and 1 at the same time.",
            "It may solve some very hard problems one day.",
        ),
        points=(
            "Qubits: superpositions of 0 and 1",
            "Entanglement: qubits linked to each other",
            "Promise: molecules, factoring, optimisation",
            "Today: small machines with many errors",
        ),
        word="Qubits",
    ),
    Topic(
        keys=("climate change", "global warming", "greenhouse effect"),
        name="climate change",
        gist="Earth warming from greenhouse gases.",
        sentences=(
            "Climate change is the long-term warming of Earth's climate, driven mainly by carbon "
            "dioxide and other greenhouse gases from burning fossil fuels.",
            "These gases trap heat that would otherwise escape to space.",
            "Its effects include rising sea levels, more heatwaves and heavy rain, and melting "
            "glaciers.",
        ),
        simple=(
            "The Earth is getting warmer.",
            "Gases from burning coal, oil and gas trap heat like a blanket.",
            "This melts ice and changes the weather.",
        ),
        points=(
            "Cause: greenhouse gases from fossil fuels",
            "Mechanism: the gases trap heat",
            "Effects: rising seas, heatwaves, melting glaciers",
        ),
        word="Warming",
    ),
    Topic(
        keys=("solar system", "planet"),
        name="the solar system",
        gist="The Sun and everything orbiting it.",
        sentences=(
            "The solar system is the Sun and everything that orbits it: eight planets, their "
            "moons, dwarf planets, asteroids and comets.",
            "The four inner planets (Mercury, Venus, Earth, Mars) are rocky; the four outer ones "
            "(Jupiter, Saturn, Uranus, Neptune) are giants of gas and ice.",
            "It formed about 4.6 billion years ago from a collapsing cloud of gas and dust.",
        ),
        simple=(
            "The Sun is in the middle of the solar system.",
            "Eight planets go around it, and Earth is one of them.",
            "Some planets are rocky and some are huge balls of gas.",
        ),
        points=(
            "Centre: the Sun",
            "Inner planets: Mercury, Venus, Earth, Mars",
            "Outer planets: Jupiter, Saturn, Uranus, Neptune",
            "Age: about 4.6 billion years",
        ),
        word="Planets",
    ),
    Topic(
        keys=("stackit",),
        name="STACKIT",
        gist="A European cloud with AI model serving.",
        sentences=(
            "STACKIT is a European cloud platform run by the Schwarz Group.",
            "Its AI Model Serving offers open language and embedding models behind an "
            "OpenAI-compatible API, hosted in Germany.",
            "Requests are authenticated with an AI Model Serving token.",
        ),
        simple=(
            "STACKIT is a company that rents out computers in data centres in Europe.",
            "It can run AI models for you.",
            "You talk to them over the internet with a secret key.",
        ),
        points=(
            "Provider: a European cloud from the Schwarz Group",
            "Service: AI Model Serving with an OpenAI-compatible API",
            "Access: an AI Model Serving auth token",
        ),
        word="Cloud",
    ),
    Topic(
        keys=("large language model", "language model", "llm", "chatbot", "gpt"),
        name="large language models",
        gist="Models that predict text, token by token.",
        sentences=(
            "A large language model (LLM) is a neural network trained on huge amounts of text to "
            "predict the next token of a text.",
            "Repeating that prediction token by token lets it write answers, summaries, code and "
            "translations.",
            "It has no live knowledge of the world: it can be wrong with confidence, so important "
            "answers need checking.",
        ),
        simple=(
            "A language model is a computer program that has read a huge amount of text.",
            "It writes by guessing the next word again and again.",
            "It can sound sure and still be wrong, so check what it says.",
        ),
        points=(
            "Training: huge amounts of text",
            "Task: predict the next token",
            "Uses: answers, summaries, code and translation",
            "Limits: can be confidently wrong",
        ),
        word="Prediction",
    ),
    Topic(
        keys=("token",),
        name="tokens",
        gist="Pieces of text a model counts.",
        sentences=(
            "A token is the unit of text a language model reads and writes: a word, part of a "
            "word or a punctuation mark.",
            "In English, one token is about three quarters of a word on average.",
            "Prices, rate limits and context lengths are all counted in tokens.",
        ),
        simple=(
            "A token is a small piece of a word.",
            "Language models read and write text piece by piece.",
            "Longer texts have more tokens.",
        ),
        points=(
            "Unit: a word, part of a word or a punctuation mark",
            "Size: about three quarters of an English word on average",
            "Counts: prices, rate limits and context length",
        ),
        word="Subwords",
    ),
    Topic(
        keys=("machine learning",),
        name="machine learning",
        gist="Computers learning patterns from data.",
        sentences=(
            "Machine learning is a way of building programs that learn patterns from examples "
            "instead of following hand-written rules.",
            "A model is trained on data, measured on examples it has not seen, and then used to "
            "make predictions.",
            "Spam filters, recommendations and speech recognition are everyday examples.",
        ),
        simple=(
            "Machine learning means a computer learns from examples.",
            "Show it many examples, and it finds the patterns.",
            "Then it can make good guesses about new things.",
        ),
        points=(
            "Idea: learn patterns from examples",
            "Training: fit a model to data",
            "Testing: measure it on unseen examples",
            "Examples: spam filters and speech recognition",
        ),
        word="Learning",
    ),
    Topic(
        keys=("neural network",),
        name="neural networks",
        gist="Layers of simple units learning together.",
        sentences=(
            "A neural network is a model made of layers of simple units, each of which weighs "
            "its inputs and passes on a result.",
            "Training adjusts the weights step by step so that the network's outputs get closer "
            "to the right answers.",
            "Deep networks with many layers power image recognition and language models.",
        ),
        simple=(
            "A neural network is a computer program loosely inspired by the brain.",
            "It has many small parts that pass numbers to each other.",
            "With practice it gets better at a task.",
        ),
        points=(
            "Units: each weighs its inputs and passes on a result",
            "Layers: units are stacked in layers",
            "Training: weights are adjusted to reduce errors",
        ),
        word="Layers",
    ),
    Topic(
        keys=("python",),
        name="Python",
        gist="A popular, readable programming language.",
        sentences=(
            "Python is a general-purpose programming language known for its readable syntax.",
            "It is the most common language for data science and machine learning, and Jupyter "
            "notebooks run it by default.",
            "Its large ecosystem of packages is installed with pip from the Python Package Index.",
        ),
        simple=(
            "Python is a language for telling computers what to do.",
            "Its code is easy to read.",
            "Many scientists use it.",
        ),
        points=(
            "Style: readable syntax",
            "Uses: data science, automation and the web",
            "Packages: installed with pip from PyPI",
        ),
        word="Programming",
    ),
    Topic(
        keys=("jupyter", "notebook"),
        name="Jupyter notebooks",
        gist="Documents mixing code, text and results.",
        sentences=(
            "A Jupyter notebook is a document that mixes runnable code, its results and "
            "explanatory text.",
            "Code runs cell by cell in a kernel, so you can try an idea and see the result "
            "right below it.",
            "Notebooks are saved as .ipynb files, which keep the outputs for others to read.",
        ),
        simple=(
            "A notebook is a page where you can write code and notes together.",
            "You run the code one box at a time.",
            "The answers show up right under the code.",
        ),
        points=(
            "Cells: code and text in one document",
            "Kernel: runs the code cell by cell",
            "Files: saved as .ipynb with their outputs",
        ),
        word="Cells",
    ),
)


@dataclass(frozen=True)
class City:
    """A city's facts; ``capital`` decides between enum options such as capital/town."""

    name: str
    country: str
    population: int  # city proper, rounded (see the module docstring for the source)
    capital: bool
    sights: tuple[str, ...]
    language: str
    continent: str = "Europe"
    currency: str = "euro"


CITIES: tuple[City, ...] = (
    City("Berlin", "Germany", 3_880_000, True, ("the Brandenburg Gate", "the Reichstag building",
         "Museum Island", "the East Side Gallery", "the Berlin TV Tower"), "German"),
    City("Hamburg", "Germany", 1_910_000, False, ("the Elbphilharmonie", "the Speicherstadt",
         "the Port of Hamburg", "Miniatur Wunderland"), "German"),
    City("Munich", "Germany", 1_510_000, False, ("Marienplatz", "the English Garden",
         "Nymphenburg Palace", "the Deutsches Museum"), "German"),
    City("Cologne", "Germany", 1_090_000, False, ("Cologne Cathedral", "the Hohenzollern Bridge",
         "Museum Ludwig"), "German"),
    City("Frankfurt", "Germany", 775_000, False, ("the Römerberg", "the Main Tower",
         "the Städel Museum"), "German"),
    City("Vienna", "Austria", 2_000_000, True, ("Schönbrunn Palace", "St. Stephen's Cathedral",
         "the Hofburg", "the Prater"), "German"),
    City("Zurich", "Switzerland", 425_000, False, ("the Old Town", "Lake Zurich",
         "the Grossmünster"), "German", currency="Swiss franc"),
    City("Paris", "France", 2_100_000, True, ("the Eiffel Tower", "the Louvre", "Notre-Dame",
         "the Arc de Triomphe"), "French"),
    City("London", "United Kingdom", 8_900_000, True, ("the Tower of London", "the British Museum",
         "Buckingham Palace", "Tower Bridge"), "English", currency="pound sterling"),
    City("Rome", "Italy", 2_750_000, True, ("the Colosseum", "the Pantheon", "the Trevi Fountain",
         "the Roman Forum"), "Italian"),
    City("Madrid", "Spain", 3_330_000, True, ("the Prado Museum", "the Royal Palace", "Retiro Park",
         "the Plaza Mayor"), "Spanish"),
    City("Amsterdam", "Netherlands", 930_000, True, ("the Rijksmuseum", "the Anne Frank House",
         "the Van Gogh Museum", "the canal ring"), "Dutch"),
    City("Lisbon", "Portugal", 550_000, True, ("Belém Tower", "Jerónimos Monastery",
         "the Alfama district", "São Jorge Castle"), "Portuguese"),
    City("Prague", "Czech Republic", 1_360_000, True, ("Charles Bridge", "Prague Castle",
         "Old Town Square"), "Czech", currency="Czech koruna"),
    City("Warsaw", "Poland", 1_860_000, True, ("the Old Town", "the Royal Castle",
         "the Palace of Culture and Science"), "Polish", currency="złoty"),
    City("New York", "United States", 8_260_000, False, ("the Statue of Liberty", "Central Park",
         "the Empire State Building", "Times Square"), "English", "North America", "US dollar"),
    City("Tokyo", "Japan", 14_190_000, True, ("Senso-ji", "the Tokyo Skytree", "the Meiji Shrine",
         "Shibuya Crossing"), "Japanese", "Asia", "yen"),
)  # fmt: skip

#: Names that fill a "country" field when a prompt mentions them.
COUNTRIES = frozenset({c.country for c in CITIES}) | {
    "Belgium", "Denmark", "Finland", "Greece", "Ireland", "Norway", "Sweden", "Hungary", "Canada",
    "Mexico", "Brazil", "Argentina", "China", "India", "Australia", "Egypt", "Kenya", "Turkey",
    "USA", "UK", "Luxembourg", "Slovakia", "Croatia", "Slovenia", "Romania", "Bulgaria",
}  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """A recipe for structured-output demos (values for title, steps, ingredients, ...)."""

    keys: tuple[str, ...]
    title: str
    difficulty: str  # easy / medium / hard
    minutes: int
    servings: int
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        keys=("pancake",),
        title="Pancakes",
        difficulty="easy",
        minutes=25,
        servings=4,
        ingredients=("200 g flour", "2 eggs", "300 ml milk", "1 pinch of salt", "butter"),
        steps=(
            "Whisk the flour, eggs, milk and salt into a smooth batter.",
            "Let the batter rest for 10 minutes.",
            "Melt a little butter in a frying pan over medium heat.",
            "Pour in a ladle of batter and tilt the pan to spread it.",
            "Flip the pancake when bubbles appear and cook it for another minute.",
            "Serve warm with fruit, syrup or sugar.",
        ),
    ),
    Recipe(
        keys=("omelette", "omelet"),
        title="Omelette",
        difficulty="easy",
        minutes=10,
        servings=1,
        ingredients=("3 eggs", "1 tablespoon butter", "salt", "pepper"),
        steps=(
            "Beat the eggs with a pinch of salt and pepper.",
            "Melt the butter in a frying pan over medium heat.",
            "Pour in the eggs and stir gently until they begin to set.",
            "Fold the omelette in half and slide it onto a plate.",
        ),
    ),
    Recipe(
        keys=("tomato soup",),
        title="Tomato soup",
        difficulty="easy",
        minutes=35,
        servings=4,
        ingredients=("1 kg tomatoes", "1 onion", "2 cloves of garlic", "500 ml stock",
                     "olive oil", "salt"),
        steps=(
            "Chop the onion and garlic and soften them in olive oil.",
            "Add the chopped tomatoes and cook for 10 minutes.",
            "Pour in the stock and simmer for 15 minutes.",
            "Blend until smooth and season with salt.",
        ),
    ),
)  # fmt: skip

#: Clean tech jokes: the answer to a joke request about anything without a topical joke.
JOKES: tuple[str, ...] = (
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "A SQL query walks into a bar, goes up to two tables and asks: may I join you?",
    "Why did the developer go broke? He used up all his cache.",
    "I would tell you a UDP joke, but you might not get it.",
    "Why was the JavaScript developer sad? Because he didn't know how to null his feelings.",
    "How many programmers does it take to change a light bulb? None, that's a hardware problem.",
    "Why do Java developers wear glasses? Because they don't C#.",
)

#: Jokes by topic word; the tech jokes answer any other joke request.
TOPICAL_JOKES: dict[str, tuple[str, ...]] = {
    "cat": ("Why was the cat sitting on the computer? To keep an eye on the mouse.",),
    "dog": ("Why did the dog sit in the shade? Because he didn't want to be a hot dog.",),
    "math": ("Why was six afraid of seven? Because seven ate nine.",),
    "physics": ("Why can't you trust an atom? Because they make up everything.",),
    "chemistry": ("I would tell you a chemistry joke, but I know I wouldn't get a reaction.",),
    "river": ("Why are rivers always rich? Because they have two banks.",),
    "python": ("Why do Python programmers have low self-esteem? They're constantly comparing "
               "their self to others.",),
    "coffee": ("How does a programmer drink coffee? With Java.",),
    "cloud": ("Why did the cloud break up with the server? It needed more space.",),
    "rag": ("Why did the language model bring a library card? It was told to answer only from "
            "the documents.",),
}  # fmt: skip
