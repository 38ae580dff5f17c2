"""The simulated shop's category catalogue: names, search vocabulary (synonyms, and Chinese words
for a few categories), brands and their model lines, price levels and complementary categories (a
phone buyer goes on to look at cases and chargers).

Pure data; the simulator turns it into items. Category ids are the 1-based positions here, so they
are stable across runs and seeds. The vocabulary is what makes the relevance sources disagree the way
they do in a real shop: a synonym ("kicks") shares no word with a title ("sneakers"), a word belongs
to two categories ("trainers"), a model word ("zentek z5") matches a phone and the cases made for
it, and a Chinese query ("蓝牙耳机") shares only part of its words with a bilingual title ("无线耳机").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One category: ``words`` are the nouns a shopper types (the first one is the title word),
    ``demand`` its relative traffic; ``zh_words`` its Chinese nouns (the first one goes into the
    items' titles, after the English ones), empty for categories without Chinese titles."""

    name: str
    words: tuple[str, ...]
    brands: tuple[str, ...]
    median_price: float
    demand: float
    complements: tuple[str, ...] = ()
    zh_words: tuple[str, ...] = ()


_C = Category

CATEGORIES: tuple[Category, ...] = (
    _C(
        "phones",
        ("phone", "smartphone", "mobile", "cell phone", "cellphone"),
        ("novaphone", "zentek", "orbi", "kaito", "lumo"),
        420.0,
        3.0,
        ("phone_cases", "chargers", "earbuds", "screen_protectors"),
        ("手机", "智能手机", "新手机"),
    ),
    _C(
        "phone_cases",
        ("case", "phone case", "cover", "phone cover", "bumper"),
        ("shellix", "armorly", "zentek", "casemate"),
        18.0,
        1.6,
        (),
        ("手机壳", "保护壳", "手机套"),
    ),
    _C(
        "chargers",
        ("charger", "usb c charger", "power adapter", "cable"),
        ("voltix", "ampere", "zentek", "chargo"),
        22.0,
        1.4,
    ),
    _C(
        "screen_protectors",
        ("screen protector", "tempered glass"),
        ("glassio", "armorly", "shellix"),
        9.0,
        0.8,
    ),
    _C(
        "earbuds",
        ("earbuds", "wireless earphones", "in ear headphones", "earphones", "bluetooth earbuds"),
        ("sonora", "beatline", "kaito", "audix"),
        79.0,
        2.0,
        ("chargers",),
        ("无线耳机", "蓝牙耳机", "耳机"),
    ),
    _C(
        "headphones",
        ("headphones", "over ear headphones", "noise cancelling headphones"),
        ("sonora", "audix", "beatline"),
        149.0,
        1.3,
    ),
    _C(
        "laptops",
        ("laptop", "notebook", "ultrabook"),
        ("lenra", "asterix", "zentek", "macro"),
        899.0,
        2.2,
        ("laptop_bags", "mice", "keyboards", "monitors"),
    ),
    _C(
        "laptop_bags",
        ("laptop bag", "laptop backpack", "sleeve"),
        ("packwell", "urbanix", "tumble"),
        45.0,
        0.8,
    ),
    _C("mice", ("mouse", "wireless mouse", "gaming mouse"), ("logix", "razorback", "zentek"), 29.0, 1.1),
    _C("keyboards", ("keyboard", "mechanical keyboard"), ("logix", "razorback", "keyon"), 69.0, 0.9),
    _C("monitors", ("monitor", "display", "4k monitor"), ("viewmax", "lenra", "asterix"), 249.0, 1.0),
    _C(
        "tablets",
        ("tablet", "ipad", "e reader"),
        ("novaphone", "lenra", "kaito"),
        329.0,
        1.2,
        ("phone_cases", "chargers"),
    ),
    _C(
        "smartwatches",
        ("smartwatch", "fitness tracker", "watch"),
        ("fitly", "novaphone", "pulse"),
        199.0,
        1.2,
        ("chargers",),
    ),
    _C(
        "cameras",
        ("camera", "mirrorless camera", "dslr"),
        ("optika", "kanon", "fujiro"),
        699.0,
        0.8,
        ("memory_cards", "tripods"),
    ),
    _C("memory_cards", ("memory card", "sd card", "micro sd"), ("sandisco", "kingbyte", "voltix"), 19.0, 0.7),
    _C("tripods", ("tripod", "camera stand", "gimbal"), ("steadio", "optika", "manfro"), 59.0, 0.4),
    _C(
        "tvs",
        ("tv", "television", "smart tv", "oled tv"),
        ("viewmax", "samsing", "elgee"),
        649.0,
        1.4,
        ("soundbars",),
    ),
    _C("soundbars", ("soundbar", "speaker", "home theater"), ("sonora", "audix", "elgee"), 229.0, 0.6),
    _C(
        "game_consoles",
        ("console", "game console", "gaming console"),
        ("playbox", "nintara", "xstation"),
        449.0,
        1.0,
        ("video_games",),
    ),
    _C("video_games", ("game", "video game", "rpg game"), ("playbox", "nintara", "ubico"), 49.0, 1.5),
    _C(
        "running_shoes",
        ("running shoes", "trainers", "runners", "jogging shoes", "running trainers"),
        ("swoosh", "adiva", "asix", "newbal"),
        109.0,
        2.0,
        ("sports_socks",),
    ),
    _C("sports_socks", ("running socks", "sport socks", "socks"), ("swoosh", "adiva", "puma"), 12.0, 0.7),
    _C(
        "sneakers",
        ("sneakers", "shoes", "trainers", "kicks", "casual shoes"),
        ("swoosh", "adiva", "vansy", "converso"),
        89.0,
        2.0,
    ),
    _C("jackets", ("jacket", "coat", "parka", "rain jacket"), ("northface", "patago", "columba"), 159.0, 1.5),
    _C("t_shirts", ("t shirt", "tee", "shirt"), ("basico", "uniquo", "hanex"), 19.0, 2.2),
    _C("jeans", ("jeans", "denim", "pants"), ("levon", "wrangel", "basico"), 59.0, 1.6),
    _C("dresses", ("dress", "summer dress", "maxi dress"), ("zarina", "mangolia", "hemline"), 49.0, 1.8),
    _C("handbags", ("handbag", "bag", "tote", "purse"), ("coachy", "michaela", "zarina"), 129.0, 1.0),
    _C(
        "coffee_makers",
        ("coffee maker", "espresso machine", "coffee machine"),
        ("brevo", "delongo", "nespra"),
        179.0,
        0.9,
        ("coffee_beans",),
    ),
    _C(
        "coffee_beans",
        ("coffee beans", "coffee", "espresso beans"),
        ("lavaza", "illo", "roastery"),
        14.0,
        1.3,
    ),
    _C("kettles", ("kettle", "electric kettle"), ("brevo", "russo", "philux"), 39.0, 0.6),
    _C("blenders", ("blender", "smoothie maker", "mixer"), ("vitamix", "ninjo", "philux"), 89.0, 0.6),
    _C("cookware", ("pan", "frying pan", "pot", "cookware set"), ("tefalo", "lecreux", "zwill"), 69.0, 1.0),
    _C(
        "skincare",
        ("moisturizer", "face cream", "serum", "skincare"),
        ("cerava", "nivo", "ordinaire"),
        24.0,
        1.8,
    ),
    _C("shampoo", ("shampoo", "conditioner", "hair care"), ("pantino", "dovey", "headshield"), 9.0, 1.2),
    _C("perfume", ("perfume", "fragrance", "eau de parfum"), ("diorell", "chanelle", "versaci"), 89.0, 0.9),
    _C("toys", ("toy", "lego", "building blocks", "puzzle"), ("legon", "hasbra", "mattelo"), 34.0, 1.4),
    _C("books", ("book", "novel", "paperback"), ("penguo", "harpo", "vintago"), 15.0, 1.6),
    _C("baby_diapers", ("diapers", "nappies"), ("pampo", "huggo", "lilo"), 29.0, 0.9, ("baby_wipes",)),
    _C("baby_wipes", ("baby wipes", "wet wipes"), ("pampo", "huggo", "waterwipe"), 8.0, 0.6),
    _C("dog_food", ("dog food", "puppy food", "dog treats"), ("pedigro", "royalcan", "purino"), 39.0, 0.9),
    _C("cat_food", ("cat food", "kitten food", "cat litter"), ("whiskas", "royalcan", "purino"), 29.0, 0.9),
)

#: Words shoppers add to a query that say nothing about the need.
NOISE_WORDS: tuple[str, ...] = (
    "cheap",
    "best",
    "new",
    "sale",
    "2026",
    "deal",
    "black",
    "white",
    "for men",
    "for women",
    "gift",
    "discount",
    "top rated",
    "original",
    "free shipping",
    "pro",
    "mini",
    "large",
)

#: Chinese words shoppers add to a Chinese query (new model, cheap, genuine, free shipping), typed
#: without a space: "新款手机壳".
ZH_NOISE_WORDS: tuple[str, ...] = ("新款", "便宜", "正品", "包邮")

#: Numbers of each brand's model lines: brand "zentek" makes the models "z3", "z5", "z7" and "z9"
#: (see :func:`model_names`), the first the best seller.
MODEL_NUMBERS: tuple[int, ...] = (3, 5, 7, 9)

#: Adjectives used in item titles.
TITLE_WORDS: tuple[str, ...] = (
    "classic",
    "pro",
    "lite",
    "max",
    "ultra",
    "slim",
    "essential",
    "premium",
    "eco",
    "sport",
    "plus",
    "air",
)


def model_names(brand: str) -> tuple[str, ...]:
    """The model lines of a brand, as a shopper types them: its initial and a number ("z5").
    Brands sharing an initial share model words (a "s5" by sonora and one by shellix), and a brand
    selling in several categories uses them in each (a zentek z5 phone and a z5 case)."""
    return tuple(f"{brand[0].lower()}{n}" for n in MODEL_NUMBERS)


def category_index() -> dict[str, int]:
    """Category name → category_id (1-based position in :data:`CATEGORIES`)."""
    return {c.name: i + 1 for i, c in enumerate(CATEGORIES)}


def complement_ids() -> dict[int, tuple[int, ...]]:
    """category_id → the category_ids of its complements (empty tuple when none)."""
    idx = category_index()
    return {i + 1: tuple(idx[n] for n in c.complements) for i, c in enumerate(CATEGORIES)}
