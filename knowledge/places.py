"""Where a visitor is, in the words a shop's shipping pages use: "do you ship to zurich",
"im in the states", "delivery to ireland how many days".

Shipping, customs and returns pages name countries and groups of them ("European Union",
"US & Canada"), never the visitor's city or the shorthand they type. A question that names
Zurich shares no word with the page that lists Switzerland, and the page's table has a row
for the European Union, not for Poland. So the question is read with the country it means
and, for a member of the European Union, that union named too (knowledge/query.py adds them
after the question, as it does the pages' words for shoppers' ones). Which zone of *this*
shop a country falls in is the shop's own list (knowledge/groups.py), not known here: a shop
that lists countries in zones is read by its lists alone (a German shop's home zone is
"Germany", not "European Union").

The table is general knowledge, not any shop's: countries by their common English names, the
abbreviations and demonyms shoppers type, and large cities. Names that are also common words
or things a shop sells are left out on purpose ("Nice", "Split", "Jersey", "Turkey", "Georgia",
"Chile", "Cork", "Wellington", "oz"), and so are languages ("do you answer in German",
"polish for boots"); plain "us" is a pronoun, so only "USA", "U.S." and "the States" count.
"""

from __future__ import annotations

import functools
import re

# Country (as pages write it; the first name is used unless the shop writes another), then
# what shoppers type for it: other names, abbreviations, demonyms, large cities.
COUNTRIES: dict[tuple[str, ...], str] = {
    # European Union
    ("Austria",): "austrian, vienna, wien, graz, salzburg, innsbruck, linz",
    ("Belgium",): "belgian, brussels, bruxelles, antwerp, antwerpen, ghent, bruges, liege",
    ("Bulgaria",): "sofia, plovdiv, varna",
    ("Croatia",): "zagreb, dubrovnik",
    ("Cyprus",): "cypriot, nicosia, limassol, larnaca",
    ("Czech Republic", "Czechia"): "prague, praha, brno, ostrava",
    ("Denmark",): "copenhagen, aarhus, odense",
    ("Estonia",): "tallinn, tartu",
    ("Finland",): "helsinki, espoo, tampere, turku",
    ("France",): "paris, marseille, lyon, toulouse, bordeaux, lille, strasbourg, nantes",
    ("Germany",): "deutschland, berlin, munich, münchen, muenchen, cologne, köln, koeln, "
                  "frankfurt, stuttgart, düsseldorf, duesseldorf, dusseldorf, leipzig, dresden, "
                  "hanover, hannover, nuremberg, nürnberg, bremen",
    ("Greece",): "athens, thessaloniki, crete",
    ("Hungary",): "budapest, debrecen",
    ("Ireland",): "irish, dublin, galway, limerick",
    ("Italy",): "italia, rome, roma, milan, milano, naples, napoli, turin, torino, "
                "florence, firenze, venice, venezia, bologna, palermo",
    ("Latvia",): "riga",
    ("Lithuania",): "vilnius, kaunas",
    ("Luxembourg",): "luxemburg",
    ("Malta",): "valletta",
    ("Netherlands",): "holland, amsterdam, rotterdam, the hague, den haag, utrecht, "
                      "eindhoven, groningen",
    ("Poland",): "polska, warsaw, warszawa, krakow, kraków, cracow, wroclaw, wrocław, "
                 "gdansk, gdańsk, poznan, poznań, lodz, łódź",
    ("Portugal",): "lisbon, lisboa, porto, faro",
    ("Romania",): "bucharest, cluj",
    ("Slovakia",): "bratislava, kosice",
    ("Slovenia",): "ljubljana",
    ("Spain",): "españa, espana, madrid, barcelona, valencia, seville, sevilla, malaga, "
                "málaga, bilbao, mallorca, majorca, ibiza, tenerife, canary islands",
    ("Sweden",): "stockholm, gothenburg, göteborg, goteborg, malmö, malmo, uppsala",
    # The rest of Europe
    ("United Kingdom",): "uk, u.k., britain, great britain, british, england, "
                         "scotland, scottish, wales, northern ireland, london, manchester, "
                         "birmingham, liverpool, leeds, glasgow, edinburgh, bristol, cardiff, "
                         "belfast, newcastle, sheffield, nottingham",
    ("Switzerland",): "swiss, schweiz, suisse, zurich, zürich, zuerich, geneva, genève, geneve, "
                      "basel, bern, berne, lausanne, lucerne, luzern, lugano",
    ("Norway",): "norge, oslo, bergen, trondheim, stavanger",
    ("Iceland",): "reykjavik, reykjavík",
    ("Liechtenstein",): "vaduz",
    ("Serbia",): "belgrade",
    ("Ukraine",): "kyiv, kiev, lviv, odesa, odessa",
    ("Türkiye",): "turkiye, istanbul, ankara, izmir",
    # Elsewhere
    ("United States", "USA", "US"): "usa, u.s., u.s.a., united states of america, the states, "
                                    "america, american, new york, nyc, los angeles, chicago, "
                                    "houston, san francisco, seattle, boston, miami, texas, "
                                    "california, florida, alaska, hawaii",
    ("Canada",): "canadian, toronto, montreal, montréal, vancouver, ottawa, calgary, quebec, "
                 "québec, ontario",
    ("Mexico",): "mexican, mexico city",
    ("Brazil",): "brazilian, brasil, são paulo, sao paulo, rio de janeiro",
    ("Argentina",): "argentinian, argentine, buenos aires",
    ("Australia",): "australian, aussie, sydney, melbourne, brisbane, perth, adelaide",
    ("New Zealand",): "nz, auckland, christchurch",
    ("Japan",): "tokyo, osaka, kyoto",
    ("South Korea", "Korea"): "seoul, busan",
    ("China",): "beijing, shanghai, shenzhen",
    ("Hong Kong",): "hk",
    ("Singapore",): "singaporean",
    ("India",): "delhi, mumbai, bangalore, bengaluru",
    ("Israel",): "israeli, tel aviv, jerusalem",
    ("United Arab Emirates", "UAE"): "uae, u.a.e., emirates, dubai, abu dhabi",
    ("South Africa",): "south african, johannesburg, cape town",
}
EUROPEAN_UNION = frozenset({
    "Austria", "Belgium", "Bulgaria", "Croatia", "Cyprus", "Czech Republic", "Denmark",
    "Estonia", "Finland", "France", "Germany", "Greece", "Hungary", "Ireland", "Italy", "Latvia",
    "Lithuania", "Luxembourg", "Malta", "Netherlands", "Poland", "Portugal", "Romania",
    "Slovakia", "Slovenia", "Spain", "Sweden"})


@functools.cache
def _aliases() -> tuple[re.Pattern[str], dict[str, tuple[str, ...]]]:
    names: dict[str, tuple[str, ...]] = {}
    for country, typed in COUNTRIES.items():
        for alias in (*country, *typed.split(",")):
            names[alias.strip().lower()] = country
    # Longest first, so "northern ireland" is read before "ireland".
    alternatives = "|".join(re.escape(a) for a in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w])", re.I), names


def named(text: str) -> list[str]:
    """The words of the text that name a place ("zurich", "usa"; "us" only as "US")."""
    pattern, _ = _aliases()
    return [m.group(0) for m in pattern.finditer(text)
            if m.group(0).lower() != "us" or m.group(0) == "US"]


def places(text: str, shop_words: frozenset[str] = frozenset(), unions: bool = True) -> list[str]:
    """The countries the text names, as the shop's pages name them (the first of a country's
    names the shop writes, else its first name), each followed by "European Union" for a
    member unless `unions` is off; in the order they appear, each once."""
    _, names = _aliases()
    found: list[str] = []
    for alias in named(text):
        country = names[alias.lower()]
        if alias.lower() not in {n.lower() for n in country} and \
                set(alias.lower().split()) <= shop_words:
            continue  # a city the shop writes about itself ("our Berlin store")
        name = next((n for n in country if set(n.lower().split()) <= shop_words), country[0])
        found.append(name)
        if unions and country[0] in EUROPEAN_UNION:
            found.append("European Union")
    return list(dict.fromkeys(found))
