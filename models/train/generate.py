"""Synthetic, annotated text for the Airlock NER model.

usage: python generate.py --split train   --n 40000 --seed 1 --out /work/ner-runs/data/train.jsonl
       python generate.py --split heldout --n 1500  --seed 2 --out ../eval/heldout.jsonl

Each output line: {"text": ..., "entities": [{"start", "end", "label"}], "template": ...}
with character offsets (Python string indices). Every value the generator inserts
knowingly is annotated with its class from the fixed vocabulary (PERSON, LOCATION,
ORGANIZATION, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN, US_SSN, US_BANK_ROUTING,
UK_NHS, UK_NINO, IP_ADDRESS, MAC_ADDRESS, URL, DATE_OF_BIRTH, PASSPORT, DRIVER_LICENSE,
MEDICAL_RECORD, CRYPTO_ADDRESS, SECRET). train.py learns only PERSON / LOCATION /
ORGANIZATION and treats every other class as O.

Honest held-out scores: the two splits share NO template (TRAIN_TEMPLATES vs
HELDOUT_TEMPLATES below), and names, cities, streets, companies and countries are split
into disjoint pools by a hash of the lower-cased value (1 in 5 goes to held-out).
The held-out split also draws from locales never used for training.
"""
import argparse
import datetime as dt
import hashlib
import json
import os
import random
import re
import string
import sys

from faker import Faker

TRAIN_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
                 "pl_PL", "sv_SE", "en_IN"]
# held-out: the training locales (with disjoint pools) plus locales never trained on
HELDOUT_LOCALES = TRAIN_LOCALES + ["en_AU", "en_IE", "da_DK", "fi_FI", "cs_CZ", "pt_PT",
                                   "es_MX", "no_NO"]
# English-language texts dominate real traffic: weight en_* locales up.
LOCALE_WEIGHT = {"en_US": 5, "en_GB": 3, "en_IN": 2, "en_AU": 2, "en_IE": 1}


def is_heldout(value):
    h = hashlib.sha1(value.strip().lower().encode("utf-8")).digest()
    return h[0] % 5 == 0


WELL_KNOWN_ORGS = [
    "Apple", "Amazon", "Google", "Microsoft", "Siemens", "Deutsche Bank", "Barclays",
    "HSBC", "Santander", "BNP Paribas", "ING", "Rabobank", "Allianz", "SAP", "Bosch",
    "Volkswagen", "BMW", "Nestlé", "Unilever", "Philips", "Shell", "BP", "Vodafone",
    "Deutsche Telekom", "Orange", "Telefónica", "Ericsson", "Nokia", "IKEA", "Spotify",
    "Salesforce", "Oracle", "IBM", "Intel", "Cisco", "Accenture", "Deloitte", "KPMG",
    "PwC", "Ernst & Young", "Goldman Sachs", "JPMorgan Chase", "Wells Fargo",
    "Bank of America", "Citibank", "Lloyds Bank", "NatWest", "Commerzbank", "UBS",
    "Credit Suisse", "AXA", "Zurich Insurance", "Pfizer", "Novartis", "Roche", "Bayer",
    "Johnson & Johnson", "Kaiser Permanente", "Mayo Clinic", "Cleveland Clinic",
    "Charité", "NHS England", "the Home Office", "HMRC", "the IRS", "Social Security Administration",
    "Infosys", "Tata Consultancy Services", "Wipro", "Reliance Industries", "Petrobras",
    "Itaú Unibanco", "Banco do Brasil", "PKO Bank Polski", "Orlen", "Volvo", "H&M",
    "Electrolux", "Carrefour", "Renault", "Airbus", "Fiat", "Enel", "UniCredit",
    "Intesa Sanpaolo", "Heineken", "Adyen", "Booking.com", "Zalando", "Lufthansa",
    "Ryanair", "easyJet", "Uber", "Airbnb", "Netflix", "Meta", "Tesla", "Stripe",
    "Revolut", "Monzo", "N26", "Wise", "Klarna", "Atlassian", "Red Hat", "Canonical",
]
WELL_KNOWN_COUNTRIES = [
    "Germany", "France", "Spain", "Italy", "the Netherlands", "Poland", "Sweden", "India",
    "Brazil", "Portugal", "Ireland", "the United Kingdom", "the UK", "the USA",
    "the United States", "Canada", "Australia", "Jordan", "Denmark", "Finland", "Norway",
    "Austria", "Switzerland", "Belgium", "Mexico", "Japan", "China", "Kenya", "Nigeria",
    "Egypt", "Turkey", "Greece", "Czechia", "Romania", "Hungary", "Israel", "Chad",
    "Georgia", "Argentina", "Chile", "Peru", "Colombia", "South Africa", "New Zealand",
    "Scotland", "Wales", "Bavaria", "California", "Texas", "Ontario", "Catalonia",
]
TITLES = ["Dr.", "Dr", "Mr.", "Mr", "Mrs.", "Ms.", "Ms", "Prof.", "Herr", "Frau", "Mme",
          "M.", "Sr.", "Sra.", "Sir", "Nurse", "Dr.med."]
PRODUCTS = ["iPhone 15", "Excel", "Windows 11", "Teams", "Slack", "Jira", "Kubernetes",
            "PostgreSQL", "Outlook", "Chrome", "Firefox", "the VPN client", "SAP GUI",
            "Zoom", "the mobile app", "Confluence", "Docker Desktop", "Android 14",
            "MacBook Pro", "ThinkPad X1", "Kindle", "Galaxy S23", "Office 365", "Terraform"]
HOSPITAL_FMT = ["{city} General Hospital", "St. {last}'s Hospital", "{last} Medical Center",
                "{city} University Hospital", "{city} Children's Hospital", "Klinikum {city}",
                "Hôpital {last}", "{last} Clinic", "{city} Community Health Centre"]
BANK_FMT = ["Bank of {city}", "{city} Savings Bank", "{last} & {last2} Private Bank",
            "{city} Credit Union", "Sparkasse {city}", "Banco {last}", "{last} Capital"]
AGENCY_FMT = ["{last}-{last2}", "{last} Group", "{last} & Sons", "{city} Holdings",
              "{last} {last2} Partners", "{city} Institute of Technology", "{city} Municipality",
              "{city} City Council", "{city} County Department of Health",
              "{city} Police Department", "University of {city}", "{city} Tax Office",
              "{last} & {last2} LLP", "{last} Consulting", "{last} Logistics",
              "{city} Water Authority", "{last} Software GmbH", "{last} Solutions Ltd"]

FIRST_NAME_NEG = ["Mark", "Bill", "Will", "Grant", "Sue", "Pat", "Rob", "Chase", "Frank",
                  "Jack", "Ray", "Dawn", "Hope", "Faith", "Joy", "Summer", "April", "Rose"]
SENT_START_NOUNS = ["Please", "Thanks", "Attached", "Update", "Note", "Reminder", "Billing",
                    "Access", "Shipping", "Payment", "Invoice", "Security", "Weather"]


class Pools:
    """Disjoint value pools for one split, built from faker by hash-partition."""

    def __init__(self, split, seed):
        self.split = split
        self.rng = random.Random(seed)
        locales = TRAIN_LOCALES if split == "train" else HELDOUT_LOCALES
        self.fakers = {}
        self.first, self.last, self.city, self.street, self.company = {}, {}, {}, {}, {}
        self.postcode = {}
        want = split == "heldout"
        for i, loc in enumerate(locales):
            f = Faker(loc)
            f.seed_instance(seed * 1000 + i)
            self.fakers[loc] = f
            keep = lambda v: bool(v) and (is_heldout(v) == want or (split == "heldout" and loc not in TRAIN_LOCALES))
            def pool(fn, n):
                out = set()
                for _ in range(n):
                    try:
                        v = fn().replace("\n", ", ").strip()
                    except Exception:
                        continue
                    if keep(v):
                        out.add(v)
                return sorted(out)
            self.first[loc] = pool(f.first_name, 1500)
            self.last[loc] = pool(f.last_name, 1500)
            self.city[loc] = pool(f.city, 1000)
            self.street[loc] = pool(f.street_address, 1000)
            self.company[loc] = pool(f.company, 800)
            self.postcode[loc] = [f.postcode() for _ in range(200)]
        self.locales = locales
        self.weights = [LOCALE_WEIGHT.get(l, 1) for l in locales]
        self.orgs = [o for o in WELL_KNOWN_ORGS if is_heldout(o) == want]
        self.countries = [c for c in WELL_KNOWN_COUNTRIES if is_heldout(c) == want]
        self.countries += [c for c in (Faker("en_US").country() for _ in range(300))
                           if is_heldout(c) == want and len(c) < 30]
        self.countries = sorted(set(self.countries))


def luhn_ok_nhs():
    while True:
        d = [random.randint(0, 9) for _ in range(9)]
        s = sum(x * (10 - i) for i, x in enumerate(d))
        c = 11 - s % 11
        if c == 11:
            c = 0
        if c != 10:
            n = "".join(map(str, d + [c]))
            return random.choice([n, f"{n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}"])


def nino():
    a = random.choice("ABCEGHJKLMNPRSTWXYZ")
    b = random.choice("ABCEGHJKLMNPRSTWXYZ")
    while a + b in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        b = random.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = "".join(random.choice(string.digits) for _ in range(6))
    s = random.choice("ABCD")
    return random.choice([f"{a}{b}{digits}{s}", f"{a}{b} {digits[:2]} {digits[2:4]} {digits[4:]} {s}"])


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def btc_address():
    payload = bytes([random.choice([0, 5])]) + bytes(random.getrandbits(8) for _ in range(20))
    chk = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(payload + chk, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    pad = len(payload + chk) - len((payload + chk).lstrip(b"\0"))
    return "1" * pad + out


def rand_str(alphabet, n):
    return "".join(random.choice(alphabet) for _ in range(n))


def secret():
    k = random.randrange(6)
    if k == 0:
        return "AKIA" + rand_str(string.ascii_uppercase + string.digits, 16)
    if k == 1:
        return "ghp_" + rand_str(string.ascii_letters + string.digits, 36)
    if k == 2:
        return "xoxb-" + rand_str(string.digits, 12) + "-" + rand_str(string.digits, 12) + "-" + rand_str(string.ascii_letters + string.digits, 24)
    if k == 3:
        return "sk-" + rand_str(string.ascii_letters + string.digits, 40)
    if k == 4:
        return rand_str(string.ascii_letters + string.digits + "+/", 32)
    return "glpat-" + rand_str(string.ascii_letters + string.digits + "_-", 20)


class Ctx:
    """One text being rendered: a locale, people and places reused across slots."""

    def __init__(self, pools, rng):
        self.p = pools
        self.rng = rng
        self.loc = rng.choices(pools.locales, pools.weights)[0]
        self.f = pools.fakers[self.loc]
        self.people = {}

    def pick(self, table, loc=None):
        loc = loc or self.loc
        lst = table[loc] or table["en_US"]
        return self.rng.choice(lst)

    def person(self, key):
        if key not in self.people:
            loc = self.loc if self.rng.random() < 0.8 else self.rng.choice(self.p.locales)
            first, last = self.pick(self.p.first, loc), self.pick(self.p.last, loc)
            title = self.rng.choice(TITLES)
            self.people[key] = (first, last, title)
        return self.people[key]

    def full_name(self, key):
        first, last, _ = self.person(key)
        r = self.rng.random()
        if r < 0.08:
            return f"{first} {self.rng.choice(string.ascii_uppercase)}. {last}"
        if r < 0.12:
            return f"{last}, {first}"
        if r < 0.16:
            return f"{first} {last}-{self.pick(self.p.last)}"
        return f"{first} {last}"

    def org(self):
        r = self.rng.random()
        city, last, last2 = self.pick(self.p.city), self.pick(self.p.last), self.pick(self.p.last)
        if r < 0.35:
            return self.pick(self.p.company)
        if r < 0.55 and self.p.orgs:
            return self.rng.choice(self.p.orgs)
        fmt = self.rng.choice(self.rng.choice([HOSPITAL_FMT, BANK_FMT, AGENCY_FMT]))
        return fmt.format(city=city, last=last, last2=last2)

    def address(self):
        street, city = self.pick(self.p.street), self.pick(self.p.city)
        pc = self.rng.choice(self.p.postcode[self.loc])
        r = self.rng.random()
        if self.loc == "en_US":
            try:
                st = self.f.state_abbr()
            except Exception:
                st = "CA"
            return f"{street}, {city}, {st} {pc}"
        if self.loc in ("en_GB", "en_IE", "en_IN", "en_AU"):
            return f"{street}, {city} {pc}" if r < 0.7 else f"{street}\n{city}\n{pc}"
        s = f"{street}, {pc} {city}"
        if r < 0.3:
            s += ", " + self.f.current_country() if hasattr(self.f, "current_country") else ""
        return s

    def phone(self):
        return self.f.phone_number()

    def email(self, key=None):
        if key and self.rng.random() < 0.7:
            first, last, _ = self.person(key)
            user = self.rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", last])
            user = re.sub(r"[^a-z0-9._]", "", user.lower()) or "user"
            return f"{user}@{self.f.free_email_domain() if self.rng.random() < 0.5 else self.f.domain_name()}"
        return self.f.email()


def dob_str(rng, f):
    # fixed ranges (faker's age/"this year" helpers depend on today's date)
    d = f.date_between(start_date=dt.date(1935, 1, 1), end_date=dt.date(2007, 12, 31))
    fmt = rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d %B %Y", "%B %d, %Y"])
    return d.strftime(fmt)


# --------------------------------------------------------------------------- slots
# {name} in a template -> list of (text, label-or-None) segments.

def slot(ctx, name):
    rng, f = ctx.rng, ctx.f
    m = re.fullmatch(r"([a-z_]+?)(\d?)", name)
    kind, key = m.group(1), m.group(2) or "1"
    E = lambda v, l: [(v, l)]
    if kind == "name":
        return E(ctx.full_name(key), "PERSON")
    if kind == "first":
        return E(ctx.person(key)[0], "PERSON")
    if kind == "last":
        return E(ctx.person(key)[1], "PERSON")
    if kind == "titled":
        first, last, title = ctx.person(key)
        v = last if rng.random() < 0.6 else f"{first} {last}"
        return [(title + " ", None), (v, "PERSON")]
    if kind == "city":
        return E(ctx.pick(ctx.p.city), "LOCATION")
    if kind == "country":
        c = rng.choice(ctx.p.countries)
        if c.startswith("the "):
            return [("the ", None), (c[4:], "LOCATION")]
        return E(c, "LOCATION")
    if kind == "address":
        return E(ctx.address(), "LOCATION")
    if kind == "place":
        r = rng.random()
        return slot(ctx, "city" if r < 0.5 else ("address" if r < 0.8 else "country"))
    if kind == "org":
        o = ctx.org()
        if o.startswith("the "):
            return [("the ", None), (o[4:], "ORGANIZATION")]
        return E(o, "ORGANIZATION")
    if kind == "email":
        return E(ctx.email(key), "EMAIL_ADDRESS")
    if kind == "phone":
        return E(ctx.phone(), "PHONE_NUMBER")
    if kind == "card":
        c = f.credit_card_number()
        if rng.random() < 0.4 and len(c) == 16:
            c = " ".join(c[i:i + 4] for i in range(0, 16, 4))
        return E(c, "CREDIT_CARD")
    if kind == "iban":
        v = f.iban()
        if rng.random() < 0.5:
            v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
        return E(v, "IBAN")
    if kind == "ssn":
        return E(Faker("en_US").ssn() if ctx.loc != "en_US" else f.ssn(), "US_SSN")
    if kind == "routing":
        return E(Faker("en_US").aba(), "US_BANK_ROUTING")
    if kind == "nhs":
        return E(luhn_ok_nhs(), "UK_NHS")
    if kind == "nino":
        return E(nino(), "UK_NINO")
    if kind == "ip":
        return E(f.ipv4() if rng.random() < 0.8 else f.ipv6(), "IP_ADDRESS")
    if kind == "mac":
        return E(f.mac_address(), "MAC_ADDRESS")
    if kind == "url":
        if rng.random() < 0.6:
            u = f"https://{f.user_name()}:{rand_str(string.ascii_letters + string.digits, 12)}@{f.domain_name()}/{f.uri_path()}"
        else:
            u = f.url() + f.uri_path()
        return E(u, "URL")
    if kind == "dob":
        return E(dob_str(rng, f), "DATE_OF_BIRTH")
    if kind == "passport":
        v = rng.choice([rand_str(string.ascii_uppercase, 2) + rand_str(string.digits, 7),
                        rand_str(string.digits, 9), "C" + rand_str(string.ascii_uppercase + string.digits, 8)])
        return E(v, "PASSPORT")
    if kind == "dl":
        v = rng.choice([rand_str(string.ascii_uppercase, 1) + rand_str(string.digits, 7),
                        f"{rand_str(string.ascii_uppercase, 1)}{rand_str(string.digits, 3)}-{rand_str(string.digits, 4)}-{rand_str(string.digits, 4)}",
                        rand_str(string.ascii_uppercase, 5) + rand_str(string.digits, 6) + rand_str(string.ascii_uppercase, 2) + rand_str(string.digits, 3)])
        return E(v, "DRIVER_LICENSE")
    if kind == "mrn":
        return E(rng.choice(["", "MRN-", "H"]) + rand_str(string.digits, rng.choice([7, 8, 10])), "MEDICAL_RECORD")
    if kind == "btc":
        return E(btc_address(), "CRYPTO_ADDRESS")
    if kind == "secret":
        return E(secret(), "SECRET")
    # ------------- unlabelled fillers
    if kind == "product":
        return E(rng.choice(PRODUCTS), None)
    if kind == "num":
        return E(str(rng.randint(2, 99999)), None)
    if kind == "ticket":
        return E(f"{rng.choice(['INC', 'REQ', 'SUP', 'TKT', 'CASE'])}-{rng.randint(1000, 999999)}", None)
    if kind == "date":
        return E(f.date_between(start_date=dt.date(2020, 1, 1), end_date=dt.date(2026, 10, 31)).strftime(rng.choice(["%Y-%m-%d", "%d %B", "%B %d", "%d/%m/%Y"])), None)
    if kind == "month":
        return E(rng.choice(["May", "June", "April", "August", "March", "January"]), None)
    if kind == "day":
        return E(rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]), None)
    if kind == "time":
        return E(f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}", None)
    if kind == "ts":
        return E(f.date_time_between(start_date=dt.datetime(2025, 1, 1), end_date=dt.datetime(2026, 10, 31)).strftime("%Y-%m-%dT%H:%M:%S") + "Z", None)
    if kind == "money":
        return E(f"{rng.choice(['$', '€', '£'])}{rng.randint(5, 9999)}.{rng.randint(0, 99):02d}", None)
    if kind == "negname":
        return E(rng.choice(FIRST_NAME_NEG), None)
    if kind == "word":
        return E(f.word(), None)
    if kind == "sentence":
        # training texts get the locale's own words where faker has them
        if ctx.loc.startswith("en") or ctx.p.split == "train":
            return E(f.sentence(), None)
        return E(Faker("en_US").sentence(), None)
    if kind == "uuid":
        return E(f.uuid4(), None)
    if kind == "hex":
        return E(rand_str("0123456789abcdef", 12), None)
    if kind == "ident":
        return E(rng.choice(["user_name", "customerAddress", "get_person_by_id", "LocationService",
                             "org_id", "billing_city", "PersonRepository", "addr_line1",
                             "first_name", "companyName", "MAX_RETRIES", "parse_address"]), None)
    raise KeyError(name)


# --------------------------------------------------------------------------- templates
# Two disjoint sets. Style per genre; every {slot} is expanded by slot().

TRAIN_TEMPLATES = {
    "ticket": [
        "Hi support,\n\nmy name is {name} and I can't log into {product} since {day}. I work for {org} in {city}. Please call me on {phone} or write to {email}.\n\nThanks,\n{first}",
        "Ticket {ticket}: customer {name} ({email}) reports that the invoice for {money} was sent to the wrong address. Correct address: {address}.",
        "Hello, I ordered a {product} on {date} but it was delivered to {address} instead of my office at {org}. Order placed by {name}, card ending {card}.",
        "Subject: refund request\n\nDear {org} team,\nI was charged twice ({money}). My IBAN is {iban}. Kind regards, {titled}",
        "Customer {name} called from {city} asking about the {product} licence. Callback number {phone}. Escalated to {name2}.",
        "{titled} from {org} says the VPN drops every time she travels to {country}. IP at the time: {ip}.",
        "Please update the billing address for account {num} to {address}. Requested by {name} ({email}).",
        "Can you reset the password for {email}? The user {name} is locked out after moving to the {city} office.",
    ],
    "clinical": [
        "Patient {name}, DOB {dob}, MRN {mrn}, seen at {org} on {date}. Referred by {titled} for chest pain. Lives alone at {address}.",
        "Discharge summary: {name} (NHS number {nhs}) was admitted to {org}. Follow-up with {titled2} in {city} in two weeks.",
        "{titled} reviewed {first}'s bloods today. Next of kin: {name2}, phone {phone}.",
        "Pt is a 54yo male from {city}. PMH: hypertension. Seen by {titled} at {org}. Plan: repeat ECG on {day}.",
        "Referral letter\nTo: {titled2}, {org}\nRe: {name}, born {dob}, of {address}\nThank you for seeing this patient.",
    ],
    "hr": [
        "Hi {first},\n\nwelcome to {org}! Your start date is {date} and you will report to {name2} at our {city} office. Please send your passport number ({passport}) and National Insurance number to HR.\n\nBest,\n{name3}",
        "Employee record: {name}, SSN {ssn}, home address {address}, salary paid to routing {routing}.",
        "Following the review, {name} will move from the {city} team to {org}. {titled2} approved the transfer on {date}.",
        "Dear {titled},\nwe regret to inform you that your application for the role at {org} was unsuccessful.\nRegards,\n{name2}\nTalent Acquisition",
        "Reminder: {first} is on parental leave until {month}. Contact {name2} ({email2}) for anything urgent.",
        "New starter {name}: NINO {nino}, driving licence {dl}, relocating from {country}.",
    ],
    "chat": [
        "hey {first} did you get the deck from {name2}?",
        "{first}: meeting with {org} moved to {day} {time}, they're flying in from {city}",
        "lol {first} is stuck in {city} again, flights from {country} cancelled",
        "@{first} can you ping {name2} about the {product} rollout",
        "anyone know who owns the {org} account? {first} left last {month}",
        "omw, stuck in traffic near {city}. tell {first} to start without me",
        "btw {name} from {org} wants a demo next week",
        "{first} pls send me the wallet address again, is it {btc}?",
    ],
    "email": [
        "Dear {titled},\n\nThank you for meeting with us in {city}. As discussed, {org} will send the contract by {day}.\n\nBest regards,\n{name2}\n{org2}\n{address}\nTel: {phone}\n{email2}",
        "From: {name} <{email}>\nTo: {name2} <{email2}>\nSubject: Q3 numbers\n\n{first2}, attached are the figures for {org}. {sentence}",
        "Hi all, quick update: {name} joins {org} as CFO next {month}. She previously worked at {org2} in {city}.",
        "Hello {first},\nI'll be in {city} from {date} and would love to visit the {org} office at {address}.\nCheers, {first2}",
    ],
    "code": [
        "# TODO({first}): remove hard-coded key before release\nAPI_KEY = \"{secret}\"\ndef {ident}(x):\n    return x",
        "// contact {name} <{email}> if the {ident} cache breaks\nconst RETRIES = {num};",
        "    # fixed by {first} after the outage in {city}\n    if {ident} is None:\n        raise ValueError(\"missing {ident}\")",
        "/* Copyright {org}. Author: {name} */\nfn {ident}() -> u32 {{ {num} }}",
        "db_url = \"{url}\"  # {first} said this is temporary",
        "test_customer = {{\"name\": \"{name}\", \"city\": \"{city}\", \"iban\": \"{iban}\"}}",
    ],
    "log": [
        "{ts} INFO auth: login ok user={email} ip={ip} org=\"{org}\"",
        "{ts} WARN billing: card {card} declined for customer \"{name}\" ({city})",
        "{ts} ERROR shipping: cannot geocode address \"{address}\" for order {num}",
        "[{ts}] device {mac} registered by {name} at site {city}",
        "{ts} DEBUG request_id={uuid} path=/v1/users/{num} name=\"{name}\" status=200",
    ],
    "csv": [
        "id,name,email,city\n{num},{name},{email},{city}\n{num},{name2},{email2},{city}",
        "\"{name}\";\"{org}\";\"{phone}\";\"{address}\"",
        "customer_id|full_name|iban|country\n{num}|{name}|{iban}|{country}",
    ],
    "negative": [
        "I had an apple and a banana for lunch, then went for a walk along the river.",
        "The meeting is on {day} {month} {num}. Please bring your laptop.",
        "{negname} the invoice as paid once the transfer clears.",
        "We should take the high road here and explain the outage openly.",
        "May I ask why the build failed? It passed on {day}.",
        "{sentence} {sentence}",
        "Rollout of {product} is planned for {month}. No action needed.",
        "Attached is the report. Main Street is a metaphor the author uses for ordinary life.",
        "The {ident} field must not be empty; see {ident} for details.",
        "Will you bill the client for the extra hours? Grant said it's fine.",
        "Apple pie, orange juice and amazon-sized portions: the canteen menu for {day}.",
        "{ts} INFO worker started pid={num} queue=default",
        "Please restart the service and check the logs around {time}.",
    ],
}

HELDOUT_TEMPLATES = {
    "ticket": [
        "Good morning, this is {name} from {org}. Our {product} installation in {city} stopped syncing. Reach me at {email} or {phone}. Ticket ref {ticket}.",
        "Complaint logged {date}: {titled} says the parcel never arrived at {address}. Card used: {card}.",
        "URGENT - {name} cannot access payroll. Employee is based in {city}, {country}. Manager: {name2}.",
        "Re: {ticket}\n\n{first}, we've moved your account to the {org} tenant. If anything looks wrong, reply here.\n\n-- {name2}, Support",
    ],
    "clinical": [
        "Clinic note {date}. {name} (MRN {mrn}) attended with her daughter {name2}. Referred on to {org}. Address on file: {address}.",
        "Consultant: {titled}. Patient: {name}, d.o.b. {dob}, NHS no. {nhs}. Transferred from {org} ({city}).",
        "Telephone consult with {first} regarding medication. GP is {titled2} at {org}.",
    ],
    "hr": [
        "Offer letter for {name}: position at {org}, {city}. Please confirm your SSN ({ssn}) and bank routing number {routing} for payroll.",
        "Exit interview: {name} leaves {org} on {date} to join {org2}. Reason: relocation to {country}.",
        "Hi team, please congratulate {first} on the promotion! {titled2} will take over the {city} office.",
        "Background check for {name}: passport {passport}, licence {dl}, previous address {address}.",
        "Payroll: {name}, NI number {nino}, moving to the {org} office in {city}.",
    ],
    "chat": [
        "{first} u coming to the {city} offsite?",
        "ok so {name} from {org} just called me, she wants the numbers by {day}",
        "can someone add {first} to the channel, she's joining from the {country} team",
        "{first} > moved the standup to {time}, {first2} is off today",
        "pls dont share {name2}'s number ({phone}) in the public channel",
        "{first} did you send the {money} to {btc} yet",
    ],
    "email": [
        "Hi {first},\n\nFollowing our call, {org} is happy to proceed. Invoice to: {address}. Bank: {iban}.\n\nWarm regards\n{name2}\nHead of Procurement, {org2}\n{phone}",
        "To whom it may concern,\n\nI confirm that {titled} has been employed by {org} since {date}.\n\n{name2}\nHR, {city}",
        "Fwd: travel plans - {first2} lands in {city} {day} night, hotel is near {address}.",
    ],
    "code": [
        "# owner: {name} ({email})\nSECRET_TOKEN = '{secret}'  # rotate me",
        "def test_{ident}():\n    user = make_user(name=\"{name}\", city=\"{city}\")\n    assert user.ok",
        "-- migration by {first}\nINSERT INTO customers (name, org) VALUES ('{name2}', '{org}');",
        "REPO = \"{url}\"  # {first}'s deploy creds, remove",
    ],
    "log": [
        "{ts} audit: user \"{name}\" exported report from {ip} (tenant {org})",
        "{ts} payment ok iban={iban} payer=\"{name}\" amount={money}",
        "{ts} sshd[{num}]: Accepted publickey for {first} from {ip}",
        "level=warn ts={ts} msg=\"address validation failed\" addr=\"{address}\"",
        "{ts} dhcpd: DHCPACK on {ip} to {mac} ({first}-laptop, owner {name})",
    ],
    "csv": [
        "name;company;city;phone\n{name};{org};{city};{phone}",
        "{num},\"{name}\",{dob},{email}",
    ],
    "negative": [
        "Can we move the sprint review to {month}? {day} is a holiday.",
        "The apple harvest was poor this year, and the jordan almonds sold out.",
        "Mark the ticket as resolved and close the incident once {product} is patched.",
        "Street lights on the main road will be replaced next week.",
        "{ident} returns null when {ident} is missing.",
        "Summer sale: {money} off every {product} until the end of {month}.",
        "{sentence}",
        "Frank feedback is welcome. Chase the vendor if the quote is late.",
    ],
}


# ------------------------------------------------------------- compositional texts
# Training only: besides the fixed templates, texts composed at random from generic
# pieces (clauses around an entity, key/value fields, tables with random columns,
# signatures with random roles, filler sentences), so the model cannot lean on the
# exact wording of a few dozen templates.
CLAUSES = {
    "PER": ["{x} said", "ask {x}", "cc {x}", "thanks {x}", "{x} will join", "assigned to {x}",
            "per {x}", "{x} approved it", "call {x}", "with {x}", "{x} wrote:", "spoke to {x}",
            "signed by {x}", "owner: {x}", "{x} is out today", "reported by {x}", "{x}'s laptop",
            "dear {x}", "regards, {x}", "- {x}", "by {x}", "{x} (on leave)", "for {x}"],
    "LOC": ["in {x}", "from {x}", "near {x}", "to {x}", "based in {x}", "ship to {x}",
            "office: {x}", "travelling to {x}", "moved to {x}", "site {x}", "at {x}",
            "the {x} branch", "located at {x}", "{x} office", "delivery address: {x}"],
    "ORG": ["at {x}", "from {x}", "{x} support", "works for {x}", "client: {x}", "{x} invoice",
            "joined {x}", "{x} account", "vendor {x}", "on behalf of {x}", "{x} says",
            "employer: {x}", "insurer {x}", "bank: {x}", "contract with {x}"],
}
# Clauses that hold several entities side by side, so the model learns where one ends
# and the next begins ("{CITY}, {COUNTRY}" is two entities, "{PER} ({ORG})" too).
PHRASES = [
    "{PER} from {ORG}", "{PER} ({ORG})", "{PER} of {ORG}, {CITY}", "{CITY}, {COUNTRY}",
    "{ORG} in {CITY}", "{ORG}'s {CITY} office", "{PER} at {ORG}", "{PER}, {ROLE} at {ORG}",
    "{PER} and {PER} from the {CITY} team", "{ORG} ({COUNTRY})", "{PER} moved from {CITY} to {CITY}",
    "customer {ORG}, contact {PER}", "{PER} <{EMAIL}>", "{PER}, {ADDR}", "{ORG}, {ADDR}",
    "{PER} flew {CITY} - {CITY}", "{PER}/{ORG}", "{ORG} acquired {ORG}", "tenant {ORG}",
    "{PER} ({CITY})", "{PER} ({COUNTRY})", "{ORG} branch in {CITY}, {COUNTRY}",
    "the {ORG} account managed by {PER}", "{PER}'s address is {ADDR}", "{PER}, {PER} and {PER}",
    "{LASTFIRST} ({ORG})", "{ORG} - {CITY}", "visit to {ORG} in {COUNTRY} with {PER}",
    # where a name ends and what follows it begins
    "{PER}, DOB: {DOB}", "{PER}, born {DOB}", "{PER} (DOB {DOB})", "{PER}, aged {AGE}",
    "{PER}, {AGE} years old", "{PER}, MRN {MRN}", "{PER}, NHS {NHS}", "{PER}, ID {NUM}",
    "{PER}, tel. {PHONE}", "{LASTFIRST}, DOB {DOB}",
    # first names alone, and inside host names
    "{FIRST} lands in {CITY} tonight", "add {FIRST} to the thread", "{FIRST} is joining from {COUNTRY}",
    "ping {FIRST}", "host {FIRST}-pc", "{FIRST}-laptop", "{FIRST}s-MacBook-Pro", "{FIRST} and {FIRST} are off",
]
FIELD_KEYS = {
    "name": ("PER", ["Name", "Full name", "Contact", "Patient", "Employee", "Customer", "Owner", "Attn"]),
    "first": ("PERF", ["First name", "Given name", "Nickname"]),
    "city": ("CITY", ["City", "Town", "Location", "Site", "Place of birth"]),
    "country": ("COUNTRY", ["Country", "Nationality", "Region"]),
    "address": ("ADDR", ["Address", "Home address", "Postal address", "Ship to", "Billing address"]),
    "org": ("ORG", ["Company", "Employer", "Organisation", "Hospital", "Bank", "Insurer", "Vendor", "Client"]),
    "email": ("email", ["Email", "E-mail", "Mail"]),
    "phone": ("phone", ["Phone", "Tel", "Mobile", "Fax"]),
    "dob": ("dob", ["DOB", "Date of birth", "Born"]),
    "iban": ("iban", ["IBAN", "Account"]),
    "ip": ("ip", ["IP", "Client IP", "Host"]),
    "card": ("card", ["Card", "Card number", "PAN"]),
    "product": ("product", ["Product", "App", "Tool"]),
    "ticket": ("ticket", ["Ticket", "Ref", "Case"]),
    "date": ("date", ["Date", "Created", "Due"]),
    "money": ("money", ["Amount", "Total", "Balance"]),
}
# Capitalised words that are no entity (headers, roles, tools, acronyms), and greetings in
# many languages before a name: the model must not take capitals or a greeting for a name.
NOT_ENTITIES = ["Forwarded message", "See the README", "Patient stable overnight",
                "Passenger list attached", "Daughter present at the visit", "NDA signed",
                "COPD exacerbation", "Redis and Kafka are down", "Elasticsearch reindex done",
                "git push failed again", "Grafana dashboards updated", "Subject: Q3 numbers",
                "Re: your ticket", "VPN issue resolved", "SLA breach on P1", "GDPR request logged",
                "KPI review moved", "HR update", "IT ticket closed", "Manager approval pending",
                "Postgres failover tested", "Terraform plan attached", "Action items below",
                "Customer churn is up", "Onboarding starts Monday", "Q&A after lunch",
                "Docker image rebuilt", "Prometheus alert fired", "Team offsite agenda",
                "Invoice overdue", "Bug triage notes", "Release notes draft", "Out of office"]
GREETINGS = ["Hi", "Hello", "Dear", "Hey", "Bonjour", "Salut", "Hola", "Buenos días", "Hallo",
             "Guten Tag", "Moin", "Ciao", "Buongiorno", "Olá", "Oi", "Hej", "Hoi", "Goedemorgen",
             "Dzień dobry", "Cześć", "Ahoj", "Hei", "Namaste", "Good morning"]
ROLES = ["CEO", "CTO", "Head of Sales", "Office Manager", "Senior Engineer", "HR Business Partner",
         "Account Executive", "Consultant", "Nurse Practitioner", "Chief Medical Officer",
         "Director, Finance", "Team Lead", "Legal Counsel", "Procurement Manager", "Intern"]


def entity_segs(ctx, kind, key="1"):
    if kind == "PER":
        r = ctx.rng.random()
        return slot(ctx, ("name" if r < 0.5 else "first" if r < 0.7 else "titled" if r < 0.9 else "last") + key)
    if kind == "PERF":
        return slot(ctx, "first" + key)
    if kind == "LOC":
        return slot(ctx, "place")
    if kind == "CITY":
        return slot(ctx, "city")
    if kind == "COUNTRY":
        return slot(ctx, "country")
    if kind == "ADDR":
        return slot(ctx, "address")
    if kind == "ORG":
        return slot(ctx, "org")
    if kind == "LASTFIRST":
        first, last, _ = ctx.person(key)
        return [(f"{last}, {first}", "PERSON")]
    if kind == "ROLE":
        return [(ctx.rng.choice(ROLES), None)]
    if kind == "EMAIL":
        return slot(ctx, "email" + key)
    if kind == "FIRST":
        return slot(ctx, "first" + key)
    if kind == "AGE":
        return [(str(ctx.rng.randint(18, 95)), None)]
    if kind in ("DOB", "MRN", "NHS", "NUM", "PHONE"):
        return slot(ctx, kind.lower())
    return slot(ctx, kind)


def phrase_segs(ctx):
    """One PHRASES entry with each {KIND} expanded (a new person per {PER})."""
    rng = ctx.rng
    tpl = rng.choice(PHRASES)
    segs, pos, n = [], 0, 0
    for m in re.finditer(r"\{([A-Z]+)\}", tpl):
        segs.append((tpl[pos:m.start()], None))
        n += 1
        segs += entity_segs(ctx, m.group(1), str(n) if m.group(1) in ("PER", "FIRST", "LASTFIRST", "EMAIL") else "1")
        pos = m.end()
    segs.append((tpl[pos:], None))
    return segs


def compose(ctx):
    rng = ctx.rng
    style = rng.choice(["clauses", "fields", "table", "signature", "clauses", "phrases", "phrases"])
    segs = []
    key = str(rng.randint(1, 3))
    if rng.random() < 0.2:
        segs += [(rng.choice(GREETINGS) + " ", None)] + slot(ctx, "first1") + [(rng.choice([",\n", ", ", "!\n"]), None)]
    if style == "clauses":
        for i in range(rng.randint(1, 5)):
            if rng.random() < 0.1:
                segs.append((rng.choice(NOT_ENTITIES), None))
            elif rng.random() < 0.35:
                segs += slot(ctx, "sentence")
            else:
                kind = rng.choice(["PER", "PER", "LOC", "ORG"])
                c = rng.choice(CLAUSES[kind])
                pre, post = c.split("{x}")
                if i == 0 or rng.random() < 0.5:
                    pre = pre[:1].upper() + pre[1:]
                segs += [(pre, None)] + entity_segs(ctx, kind, str(rng.randint(1, 3))) + [(post, None)]
                if rng.random() < 0.3:
                    segs += [(" ", None)] + slot(ctx, rng.choice(["email", "phone", "date", "ticket", "ip", "money", "iban", "dob"]))
            segs.append((rng.choice([". ", ", ", "; ", "\n", " - ", " "]), None))
    elif style == "phrases":
        for i in range(rng.randint(1, 4)):
            if rng.random() < 0.25:
                segs += slot(ctx, "sentence") + [(" ", None)]
            if rng.random() < 0.5:
                segs.append((rng.choice(["Note: ", "FYI ", "re ", "Update - ", "> ", "* ", "", "", "so ", "Meeting: "]), None))
            if rng.random() < 0.25:
                segs.append((rng.choice(NOT_ENTITIES) + rng.choice([". ", "\n", "; "]), None))
            segs += phrase_segs(ctx)
            # never a bare space: two names side by side would be one name to a reader
            segs.append((rng.choice([". ", "; ", "\n", "\n- ", " | "]), None))
    elif style == "fields":
        sep = rng.choice([": ", " = ", "=", " - ", ":\t", " | "])
        join = rng.choice(["\n", "; ", ", ", " | ", "\n"])
        keys = rng.sample(list(FIELD_KEYS), rng.randint(2, 6))
        for j, k in enumerate(keys):
            kind, names = FIELD_KEYS[k]
            label = rng.choice(names)
            if rng.random() < 0.2:
                label = label.lower()
            segs += [(label + sep, None)] + entity_segs(ctx, kind, str(j + 1))
            segs.append((join, None))
    elif style == "table":
        sep = rng.choice([",", ";", "\t", "|"])
        keys = rng.sample(list(FIELD_KEYS), rng.randint(2, 5))
        if rng.random() < 0.7:
            segs.append((sep.join(rng.choice(FIELD_KEYS[k][1]).lower().replace(" ", "_") for k in keys) + "\n", None))
        for r_ in range(rng.randint(1, 3)):
            for j, k in enumerate(keys):
                q = '"' if rng.random() < 0.2 else ""
                segs += [(q, None)] + entity_segs(ctx, FIELD_KEYS[k][0], str(r_ + 1)) + [(q + (sep if j < len(keys) - 1 else "\n"), None)]
    else:
        segs += slot(ctx, "sentence") + [("\n\n" + rng.choice(["Best", "Regards", "Thanks", "Cheers", "Kind regards", "--"]) + ",\n", None)]
        segs += slot(ctx, "name1")
        lines = ["role", "org", "address", "phone", "email"]
        for ln in rng.sample(lines, rng.randint(1, 4)):
            sep = rng.choice(["\n", " | ", ", "])
            if ln == "role":
                segs.append((sep + rng.choice(ROLES), None))
                if rng.random() < 0.5:
                    segs += [(rng.choice([", ", " at ", " - "]), None)] + slot(ctx, "org")
            else:
                segs += [(sep, None)] + slot(ctx, ln + ("1" if ln == "email" else ""))
    return segs


def variant(rng, segs):
    """Case/noise variants applied per segment so offsets stay exact."""
    r = rng.random()
    if r < 0.12:
        return [(t.lower(), l) for t, l in segs], "lower"
    if r < 0.16:
        # keep length-preserving uppercase only
        return [(t.upper() if len(t.upper()) == len(t) else t, l) for t, l in segs], "upper"
    if r < 0.22:
        return [(t.replace("\n", " ").replace(", ", " ").replace(". ", " ") if l is None else t, l) for t, l in segs], "sloppy"
    return segs, "plain"


def render(template, ctx):
    segs = []
    pos = 0
    if template == "<compose>":
        segs = compose(ctx)
        template = ""
    for m in re.finditer(r"\{([a-z_0-9]+)\}", template):
        segs.append((template[pos:m.start()].replace("{{", "{").replace("}}", "}"), None))
        segs.extend(slot(ctx, m.group(1)))
        pos = m.end()
    segs.append((template[pos:].replace("{{", "{").replace("}}", "}"), None))
    # no entity may touch a letter or digit of its neighbour (offsets stay word-aligned)
    segs = [(t, l) for t, l in segs if t]
    segs, var = variant(ctx.rng, segs)
    text, ents = "", []
    for t, l in segs:
        if l is not None and t:
            ents.append({"start": len(text), "end": len(text) + len(t), "label": l})
        text += t
    return text, ents, var


def generate(split, n, seed, compose_share=0.0):
    rng = random.Random(seed)
    random.seed(seed)
    Faker.seed(seed)
    pools = Pools(split, seed)
    templates = dict(TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES)
    if split == "train" and compose_share > 0:
        templates["composed"] = ["<compose>"]
    genres = list(templates)
    gweights = [1.0 if g != "negative" else 0.8 for g in genres]
    if "composed" in templates:
        # composed texts make up `compose_share` of the training texts
        w = compose_share / (1 - compose_share) * sum(gweights[:-1])
        gweights[-1] = w
    out = []
    while len(out) < n:
        ctx = Ctx(pools, rng)
        g = rng.choices(genres, gweights)[0]
        tpl = rng.choice(templates[g])
        text, ents, var = render(tpl, ctx)
        # occasionally join several texts into one long document (window tests)
        if split == "train" and rng.random() < 0.08:
            for _ in range(rng.randint(2, 5)):
                ctx2 = Ctx(pools, rng)
                g2 = rng.choice(genres)
                t2, e2, _ = render(rng.choice(templates[g2]), ctx2)
                off = len(text) + 2
                text += "\n\n" + t2
                ents += [{"start": e["start"] + off, "end": e["end"] + off, "label": e["label"]} for e in e2]
        for e in ents:
            assert text[e["start"]:e["end"]].strip() == text[e["start"]:e["end"]], (text, e)
        out.append({"text": text, "entities": ents, "template": f"{g}/{templates[g].index(tpl)}/{var}/{ctx.loc}"})
    return out


if __name__ == "__main__":
    # some faker providers iterate over sets: pin the hash seed so output is reproducible
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["train", "heldout"], required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--compose", type=float, default=0.0,
                    help="share of randomly composed texts (training split only)")
    a = ap.parse_args()
    rows = generate(a.split, a.n, a.seed, a.compose)
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} texts to {a.out}")
