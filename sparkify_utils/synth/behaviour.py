"""The behaviour model of the synthetic users: personas, page transitions, catalogue, profiles and rhythm.

Written from eventsim's published model (see the project's reference notes): each persona perturbs
eventsim's base page-transition table; sessions start as a thinned Poisson process with a daily and
weekly rhythm; songs come from a heavy-tailed catalogue. :mod:`sparkify_utils.synth.generate` turns
this model into users' event lines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from sparkify_utils.data.schema import CHURN_PAGE, PAGE_METHOD_STATUS, SONG_PAGE
from sparkify_utils.synth import tables

#: Users per block; also the users per part file of a directory output. Fixed (not derived from the
#: number of workers) so the output never depends on how many processes produced it.
BLOCK_USERS = 64

DAY = 86_400
IDENTIFIED_AUTH = ("Logged In", "Cancelled")
# Share of users that arrive during the window as guests and register (eventsim's user growth).
NEW_USER_SHARE = 0.025
# Level of an initial user: eventsim starts 10/12 free, but upgrades happen within a few sessions;
# this share reproduces the real paid share of rows.
INITIAL_FREE = 0.8
# Mean gaps (seconds) before the per-user log-normal multipliers: between sessions, within a session.
SESSION_GAP = 6.5 * DAY
EVENT_GAP = 90.0
# Log-normal sigma of the per-user multipliers: eventsim uses 1 for both; 0.8 between sessions gives
# the real spread of sessions per user (mean 14, median 11) instead of a much heavier tail.
SESSION_PACE_SIGMA, EVENT_PACE_SIGMA = 0.8, 1.0
SESSION_PAUSE = 1800
GUEST_RETRY_GAP = 6 * 3600.0
# Mean days from registration to the window start for initial users (exponential, capped).
TENURE_MEAN_DAYS, TENURE_CAP_DAYS = 60.0, 200.0
# Daily rhythm (peak mid-afternoon UTC) and weekend thinning of session starts.
_DAILY_AMPLITUDE, _PEAK_HOUR, _WEEKEND_RATE = 0.6, 15.0, 0.55
# Session ids are drawn from a range this many times the expected number of sessions, so ids collide
# across users about as often as in the merged real runs (2,354 ids for 3,176 user-sessions).
SESSION_ID_RANGE_PER_USER = 22
# Catalogue: tracks, artists, Zipf exponents of track popularity and of tracks per artist.
_TRACKS, _ARTISTS, _TRACK_ZIPF, _ARTIST_ZIPF = 160_000, 40_000, 0.85, 0.9
_LENGTH_MEAN, _LENGTH_SD, _LENGTH_MIN, _LENGTH_MAX = 249.1, 99.2, 0.78, 3024.7


@dataclass(frozen=True)
class Persona:
    """Multipliers on the base transition table (eventsim's variants differ in these directions)."""

    name: str
    weight: float
    cancel: float = 1.0
    ad_cancel: float = 1.0
    advert: float = 1.0
    paid_advert: float = 1.0
    thumbs_down: float = 1.0
    error: float = 1.0
    downgrade: float = 1.0
    logout: float = 1.0
    upgrade: float = 1.0
    social: float = 1.0


#: Behavioural personas: those that cancel more also see more ads (mostly as paying users, whom the
#: base table almost never shows one), errors, thumbs-down and downgrades. Calibrated so that churn is
#: learnable from page counts about as well as in the real data (ROC-AUC ≈ 0.65-0.75), not trivially.
PERSONAS = (
    Persona("loyal", 0.35, cancel=0.2, advert=0.7, thumbs_down=0.7, downgrade=0.6, upgrade=1.3, social=1.3),
    Persona("steady", 0.30, cancel=0.7),
    Persona(
        "restless",
        0.20,
        cancel=1.8,
        ad_cancel=3,
        paid_advert=15,
        thumbs_down=2.5,
        error=4,
        downgrade=1.5,
        logout=1.5,
        upgrade=1.2,
    ),
    Persona(
        "frustrated",
        0.15,
        cancel=2.6,
        ad_cancel=4,
        paid_advert=30,
        thumbs_down=4.5,
        error=8,
        downgrade=2,
        logout=2,
        social=0.85,
    ),
)


# --------------------------------------------------------------------------------------------------
# Transition tables
# --------------------------------------------------------------------------------------------------


def _parse_weights(text: str) -> list[tuple[str, float]]:
    pairs = [item.split("=") for item in text.split(";")]
    return [(name.strip(), float(value)) for name, value in pairs]


def _base_table() -> dict[tuple[str, str, str], list[tuple[tuple[str, str, str], float]]]:
    """Parse ``tables.BASE_TRANSITIONS`` into {source state: [(destination state, p), ...]}."""
    table = {}
    for source, rest in tables.BASE_TRANSITIONS.items():
        page, auth, level = source.split("|")
        dests = []
        for dest, p in _parse_weights(rest):
            if "[" in dest:
                dest_page, override = dest[:-1].split("[")
                dest_auth, dest_level = override.split("/")
                dests.append(((dest_page, dest_auth, dest_level), p))
            else:
                dests.append(((dest, auth, level), p))
        table[(page, auth, level)] = dests
    return table


def _multiplier(persona: Persona, source: str, level: str, dest: str) -> float:
    if dest == "Error":
        return persona.error
    if dest == "Cancel":
        return persona.cancel * (persona.ad_cancel if source == "Roll Advert" else 1.0)
    if dest == "Logout" and source in ("NextSong", "Thumbs Up", "Thumbs Down", "Roll Advert", "Add Friend"):
        return persona.logout
    if source == SONG_PAGE and dest == "Roll Advert":
        return persona.paid_advert if level == "paid" else persona.advert
    if source == SONG_PAGE and dest == "Thumbs Down":
        return persona.thumbs_down
    if dest == "Downgrade" or (source == "Downgrade" and dest == "Submit Downgrade"):
        return persona.downgrade
    if dest in ("Upgrade", "Submit Upgrade"):
        return persona.upgrade
    if dest in ("Thumbs Up", "Add Friend", "Add to Playlist"):
        return persona.social
    return 1.0


@dataclass(frozen=True)
class _Chain:
    """Compiled transition tables: states, their row attributes, and per-persona cumulative tables."""

    states: tuple[tuple[str, str, str], ...]
    is_song: tuple[bool, ...]
    is_redirect: tuple[bool, ...]
    identified: tuple[bool, ...]
    paid: tuple[bool, ...]
    churn: tuple[bool, ...]
    cum: tuple[tuple[list[float], ...], ...]  # [persona][state] cumulative probabilities
    dest: tuple[tuple[list[int], ...], ...]  # [persona][state] destination state ids
    start_cum: dict[tuple[str, str], list[float]]
    start_dest: dict[tuple[str, str], list[int]]


@lru_cache(maxsize=1)
def transition_chain() -> _Chain:
    """Compile the base table and its persona variants (session END mass kept as in the base table)."""
    base = _base_table()
    states = list(base)
    for dests in base.values():
        states.extend(d for d, _ in dests if d not in states)
    index = {s: i for i, s in enumerate(states)}
    cum_by_persona, dest_by_persona = [], []
    for persona in PERSONAS:
        cums, dsts = [], []
        for state in states:
            dests = base.get(state, [])
            if not dests:  # Cancellation Confirmation: the user's last event
                cums.append([0.0])
                dsts.append([index[state]])
                continue
            stay = sum(p for _, p in dests)
            weighted = [(d, p * _multiplier(persona, state[0], state[2], d[0])) for d, p in dests]
            scale = stay / sum(p for _, p in weighted)
            running, cum = 0.0, []
            for _, p in weighted:
                running += p * scale
                cum.append(running)
            cums.append(cum)
            dsts.append([index[d] for d, _ in weighted])
        cum_by_persona.append(tuple(cums))
        dest_by_persona.append(tuple(dsts))
    start_cum, start_dest = {}, {}
    for (auth, level), text in tables.SESSION_START.items():
        weights = _parse_weights(text)
        total = sum(w for _, w in weights)
        start_cum[(auth, level)] = list(np.cumsum([w / total for _, w in weights]))
        start_dest[(auth, level)] = [index[(page, auth, level)] for page, _ in weights]
    return _Chain(
        states=tuple(states),
        is_song=tuple(s[0] == SONG_PAGE for s in states),
        is_redirect=tuple(PAGE_METHOD_STATUS[s[0]][1] == 307 for s in states),
        identified=tuple(s[1] in IDENTIFIED_AUTH for s in states),
        paid=tuple(s[2] == "paid" for s in states),
        churn=tuple(s[0] == CHURN_PAGE for s in states),
        cum=tuple(cum_by_persona),
        dest=tuple(dest_by_persona),
        start_cum=start_cum,
        start_dest=start_dest,
    )


# --------------------------------------------------------------------------------------------------
# Static lists: profiles, user agents, song catalogue
# --------------------------------------------------------------------------------------------------


def _zipf_cdf(n: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    weights = 1.0 / (np.arange(n) + offset) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _user_agents() -> list[str]:
    """A few dozen real-looking user agents (combined from platform and browser fragments)."""
    agents = []
    for i, platform in enumerate(tables.UA_PLATFORMS):
        if platform.startswith("Macintosh"):
            version, webkit = tables.UA_SAFARI[i % len(tables.UA_SAFARI)]
            agents.append(
                f"Mozilla/5.0 ({platform}) AppleWebKit/{webkit} (KHTML, like Gecko) Version/{version} Safari/{webkit}"
            )
        for chrome in tables.UA_CHROME[i % 3 :: 3]:
            agents.append(
                f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome} Safari/537.36"
            )
        firefox = tables.UA_FIREFOX[i % len(tables.UA_FIREFOX)]
        agents.append(f"Mozilla/5.0 ({platform}; rv:{firefox}) Gecko/20100101 Firefox/{firefox}")
    return agents + list(tables.UA_MOBILE)


@dataclass(frozen=True)
class _Catalogue:
    """Songs as pre-built JSON pieces, so a song row costs one f-string."""

    head: list[str]  # '{"artist":"A","auth":"Logged In","firstName":'
    length: list[str]  # '249.12345'
    song: list[str]  # ',"song":"S","status":200,"ts":'
    seconds: list[int]  # playing time, for back-to-back timing
    cdf: np.ndarray  # popularity


def _pick(rng: np.random.Generator, words: list[str] | tuple[str, ...], n: int) -> list[str]:
    return [words[i] for i in rng.integers(0, len(words), n)]


@lru_cache(maxsize=2)
def song_catalogue(seed: int) -> _Catalogue:
    """A heavy-tailed song catalogue: Zipf-like track popularity, artists with Zipf-like track counts."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(1,))))
    a = _ARTISTS
    adj, noun = _pick(rng, tables.ADJECTIVES, a), _pick(rng, tables.NOUNS, a)
    first = _pick(rng, tables.MALE_NAMES + tables.FEMALE_NAMES, a)
    last, prefix = _pick(rng, tables.LAST_NAMES, a), _pick(rng, tables.ARTIST_PREFIXES, a)
    suffix = _pick(rng, tables.ARTIST_SUFFIXES, a)
    plural = [n + ("es" if n.endswith("s") else "s") for n in noun]
    patterns = rng.integers(0, 6, a)
    artists = [
        (f"{f} {la}", f"The {ad} {ns}", f"{p} {n}", f"{ad} {n}", f"{la} {s}", f"{f} {la} & The {ns}")[k]
        for f, la, ad, n, ns, p, s, k in zip(
            first, last, adj, noun, plural, prefix, suffix, patterns.tolist(), strict=True
        )
    ]
    t = _TRACKS
    artist_of = np.searchsorted(_zipf_cdf(a, _ARTIST_ZIPF, 2.0), rng.random(t))
    adj, noun, noun2 = _pick(rng, tables.ADJECTIVES, t), _pick(rng, tables.NOUNS, t), _pick(rng, tables.NOUNS, t)
    verb, prep = _pick(rng, tables.VERBS, t), _pick(rng, tables.PREPOSITIONS, t)
    suffix = _pick(rng, tables.SONG_SUFFIXES, t)
    patterns = rng.integers(0, 5, t)
    titles = [
        (f"{ad} {n}", f"{v} {p} {n}", f"{n} of {n2}", f"{ad} {n} {n2}", f"{v} {ad} {n}")[k] + s
        for ad, n, n2, v, p, s, k in zip(adj, noun, noun2, verb, prep, suffix, patterns.tolist(), strict=True)
    ]
    sigma2 = math.log1p((_LENGTH_SD / _LENGTH_MEAN) ** 2)
    lengths = rng.lognormal(math.log(_LENGTH_MEAN) - sigma2 / 2, math.sqrt(sigma2), t)
    lengths = np.clip(np.round(lengths, 5), _LENGTH_MIN, _LENGTH_MAX)
    heads = [f'{{"artist":{json.dumps(artists[i])},"auth":"Logged In","firstName":' for i in artist_of.tolist()]
    songs = [f',"song":{json.dumps(title)},"status":200,"ts":' for title in titles]
    return _Catalogue(
        head=heads,
        length=[repr(x) for x in lengths.tolist()],
        song=songs,
        seconds=[max(1, round(x)) for x in lengths.tolist()],
        cdf=_zipf_cdf(t, _TRACK_ZIPF, 10.0),
    )


@lru_cache(maxsize=1)
def profile_lists() -> dict[str, tuple[list[str], np.ndarray]]:
    """JSON-quoted profile values with their popularity CDFs."""

    def quoted(values: list[str] | tuple[str, ...], exponent: float, offset: float) -> tuple[list[str], np.ndarray]:
        return [json.dumps(v) for v in values], _zipf_cdf(len(values), exponent, offset)

    return {
        "M": quoted(tables.MALE_NAMES, 0.6, 5.0),
        "F": quoted(tables.FEMALE_NAMES, 0.6, 5.0),
        "last": quoted(tables.LAST_NAMES, 0.5, 5.0),
        "location": quoted(tables.LOCATIONS, 1.0, 3.0),
        # The real logs keep the quotes of the HTTP header inside the userAgent value.
        "agent": quoted([f'"{ua}"' for ua in _user_agents()], 1.1, 2.0),
    }


# --------------------------------------------------------------------------------------------------
# The per-user process
# --------------------------------------------------------------------------------------------------

BUFFER = 512


def _activity(t: float) -> float:
    """Relative rate of session starts at epoch second ``t`` (daily sinusoid, thinner weekends)."""
    hour = (t % DAY) / 3600.0
    rate = 1.0 + _DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - _PEAK_HOUR) / 24.0)
    return rate * (_WEEKEND_RATE if (int(t // DAY) + 3) % 7 >= 5 else 1.0)


_MAX_ACTIVITY = 1.0 + _DAILY_AMPLITUDE
_MEAN_ACTIVITY = (5 + 2 * _WEEKEND_RATE) / 7
NORMAL = NormalDist()


def next_session(rng: np.random.Generator, after: float, mean_gap: float) -> float:
    """First session start after ``after``: a thinned Poisson process whose mean gap is ``mean_gap``."""
    t = after
    scale = mean_gap * _MEAN_ACTIVITY / _MAX_ACTIVITY
    while True:
        t += rng.exponential(scale)
        if rng.random() * _MAX_ACTIVITY < _activity(t):
            return t
