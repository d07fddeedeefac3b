"""Calibrated synthetic Sparkify event logs: an eventsim-like process written from its published model.

Each user gets a behavioural persona (a perturbation of eventsim's base page-transition table),
log-normal pace multipliers, sessions with a daily and weekly rhythm, back-to-back songs from a
heavy-tailed catalogue, level changes, logouts, guests who register, and churn through ``Cancel`` →
``Cancellation Confirmation``. Every user's events come from that user's own random stream, and users
are cut into fixed-size blocks written in order, so the output is byte-identical whatever the number
of worker processes. Lines are built from pre-escaped string pieces because a per-event ``json.dumps``
would be ten times too slow for the 26-million-event full-size log.
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing as mp
import os
import shutil
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np

from sparkify_utils import _generator_tables as tables
from sparkify_utils.schema import CHURN_PAGE, PAGE_METHOD_STATUS

#: Users per block; also the users per part file of a directory output. Fixed (not derived from the
#: number of workers) so the output never depends on how many processes produced it.
BLOCK_USERS = 64

_DAY = 86_400
_SONG = "NextSong"
_IDENTIFIED_AUTH = ("Logged In", "Cancelled")
# Share of users that arrive during the window as guests and register (eventsim's user growth).
_NEW_USER_SHARE = 0.025
# Level of an initial user: eventsim starts 10/12 free, but upgrades happen within a few sessions;
# this share reproduces the real paid share of rows.
_INITIAL_FREE = 0.8
# Mean gaps (seconds) before the per-user log-normal multipliers: between sessions, within a session.
_SESSION_GAP = 6.5 * _DAY
_EVENT_GAP = 90.0
# Log-normal sigma of the per-user multipliers: eventsim uses 1 for both; 0.8 between sessions gives
# the real spread of sessions per user (mean 14, median 11) instead of a much heavier tail.
_SESSION_PACE_SIGMA, _EVENT_PACE_SIGMA = 0.8, 1.0
_SESSION_PAUSE = 1800
_GUEST_RETRY_GAP = 6 * 3600.0
# Mean days from registration to the window start for initial users (exponential, capped).
_TENURE_MEAN_DAYS, _TENURE_CAP_DAYS = 60.0, 200.0
# Daily rhythm (peak mid-afternoon UTC) and weekend thinning of session starts.
_DAILY_AMPLITUDE, _PEAK_HOUR, _WEEKEND_RATE = 0.6, 15.0, 0.55
# Session ids are drawn from a range this many times the expected number of sessions, so ids collide
# across users about as often as in the merged real runs (2,354 ids for 3,176 user-sessions).
_SESSION_ID_RANGE_PER_USER = 22
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
    Persona("restless", 0.20, cancel=1.8, ad_cancel=3, paid_advert=15, thumbs_down=2.5, error=4, downgrade=1.5,
            logout=1.5, upgrade=1.2),
    Persona("frustrated", 0.15, cancel=2.6, ad_cancel=4, paid_advert=30, thumbs_down=4.5, error=8, downgrade=2,
            logout=2, social=0.85),
)


@dataclass(frozen=True)
class GenerateSummary:
    """What ``generate_log`` wrote."""

    path: str
    users: int
    rows: int
    bytes: int
    seconds: float


@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs to generate a block of users (small, so cheap to pickle)."""

    seed: int
    users: int
    start: int  # epoch seconds
    end: int  # epoch seconds, exclusive


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
    if source == _SONG and dest == "Roll Advert":
        return persona.paid_advert if level == "paid" else persona.advert
    if source == _SONG and dest == "Thumbs Down":
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
def _chain() -> _Chain:
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
        is_song=tuple(s[0] == _SONG for s in states),
        is_redirect=tuple(PAGE_METHOD_STATUS[s[0]][1] == 307 for s in states),
        identified=tuple(s[1] in _IDENTIFIED_AUTH for s in states),
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
            agents.append(f"Mozilla/5.0 ({platform}) AppleWebKit/{webkit} (KHTML, like Gecko) "
                          f"Version/{version} Safari/{webkit}")
        for chrome in tables.UA_CHROME[i % 3::3]:
            agents.append(f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
                          f"Chrome/{chrome} Safari/537.36")
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
def _catalogue(seed: int) -> _Catalogue:
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
            first, last, adj, noun, plural, prefix, suffix, patterns.tolist(), strict=True)
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
def _profile_lists() -> dict[str, tuple[list[str], np.ndarray]]:
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

_BUFFER = 512


def _activity(t: float) -> float:
    """Relative rate of session starts at epoch second ``t`` (daily sinusoid, thinner weekends)."""
    hour = (t % _DAY) / 3600.0
    rate = 1.0 + _DAILY_AMPLITUDE * math.cos(2 * math.pi * (hour - _PEAK_HOUR) / 24.0)
    return rate * (_WEEKEND_RATE if (int(t // _DAY) + 3) % 7 >= 5 else 1.0)


_MAX_ACTIVITY = 1.0 + _DAILY_AMPLITUDE
_MEAN_ACTIVITY = (5 + 2 * _WEEKEND_RATE) / 7
_NORMAL = NormalDist()


def _next_session(rng: np.random.Generator, after: float, mean_gap: float) -> float:
    """First session start after ``after``: a thinned Poisson process whose mean gap is ``mean_gap``."""
    t = after
    scale = mean_gap * _MEAN_ACTIVITY / _MAX_ACTIVITY
    while True:
        t += rng.exponential(scale)
        if rng.random() * _MAX_ACTIVITY < _activity(t):
            return t


@lru_cache(maxsize=4)
def _strata(seed: int, users: int) -> tuple[list[int], list[int]]:
    """Persona of each user and rank of its session pace, dealt from shuffled strata.

    Stratified rather than independent draws, so even a small log has the personas in their exact
    proportions and the whole spread of paces: its churn figures then vary far less between seeds.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(2,))))
    weights = np.array([p.weight for p in PERSONAS])
    bounds = np.round(np.cumsum(weights) / weights.sum() * users).astype(int)
    personas = np.searchsorted(bounds, np.arange(users), side="right")
    return rng.permutation(personas).tolist(), rng.permutation(users).tolist()


def _is_new_user(i: int, users: int) -> bool:
    """Spread the arriving (guest → registered) users evenly over the user indices."""
    n_new = max(1, round(_NEW_USER_SHARE * users)) if users >= 10 else 0
    return (i + 1) * n_new // users > i * n_new // users


def _user_lines(i: int, plan: _Plan, out: list[str]) -> bool:
    """Append user ``i``'s events (JSON lines) to ``out``; True if the user appeared with a userId."""
    chain, cat, lists = _chain(), _catalogue(plan.seed), _profile_lists()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(plan.seed, spawn_key=(0, i))))
    personas, pace_ranks = _strata(plan.seed, plan.users)
    persona = personas[i]
    gender = "M" if rng.random() < 0.54 else "F"

    def draw(key: str) -> str:
        values, cdf = lists[key]
        return values[int(np.searchsorted(cdf, rng.random()))]

    first, last, location, agent = draw(gender), draw("last"), draw("location"), draw("agent")
    id_base = (0, 0, 0, 1, 2, 3)[int(rng.integers(0, 6))] * 10 ** max(5, len(str(plan.users)))
    user_id = json.dumps(str(id_base + i + 1))
    # Mean-preserving log-normal multipliers; the session one from the user's stratum of the population.
    z = _NORMAL.inv_cdf((pace_ranks[i] + max(rng.random(), 1e-12)) / plan.users)  # inv_cdf(0) is -inf
    session_gap = _SESSION_GAP * math.exp(_SESSION_PACE_SIGMA * z - _SESSION_PACE_SIGMA**2 / 2)
    event_gap = _EVENT_GAP * rng.lognormal(-(_EVENT_PACE_SIGMA**2) / 2, _EVENT_PACE_SIGMA)
    window = plan.end - plan.start
    new_user = _is_new_user(i, plan.users)
    if new_user:
        auth, paid, registration = "Guest", False, None
        t_next = plan.start + rng.random() * 0.8 * window
    else:
        auth, paid = "Logged In", rng.random() >= _INITIAL_FREE
        tenure = min(rng.exponential(_TENURE_MEAN_DAYS), _TENURE_CAP_DAYS) * _DAY
        registration = f"{int(plan.start - tenure)}000"
        t_next = _next_session(rng, plan.start, session_gap)
        if t_next >= plan.end:  # a slow user still appears once in the window
            t_next = plan.start + rng.random() * 0.95 * window
    sid_range = _SESSION_ID_RANGE_PER_USER * plan.users
    cum_table, dest_table = chain.cum[persona], chain.dest[persona]
    is_song, is_redirect, identified, churn = chain.is_song, chain.is_redirect, chain.identified, chain.churn
    heads, lengths, songs, seconds = cat.head, cat.length, cat.song, cat.seconds
    state_pieces: list[tuple[str, str, str, str] | None] = [None] * len(chain.states)
    song_pieces: list[tuple[str, str, str] | None] = [None, None]
    end, cdf, append = plan.end, cat.cdf, out.append
    uniforms: list[float] = []
    tracks: list[int] = []
    gaps: list[int] = []
    ju = jt = jg = 0
    last_sid = 0
    user_tail = f',"userAgent":{agent},"userId":{user_id}}}\n'

    def pieces(st: int) -> tuple[str, str, str, str]:
        page, s_auth, s_level = chain.states[st]
        method, status = PAGE_METHOD_STATUS[page]
        if identified[st]:
            head = f'{{"artist":null,"auth":"{s_auth}","firstName":{first},"gender":"{gender}","itemInSession":'
            mid = f',"lastName":{last},"length":null,"level":"{s_level}","location":{location}'
            mid += f',"method":"{method}","page":"{page}","registration":{registration},"sessionId":'
            tail = user_tail
        else:
            head = f'{{"artist":null,"auth":"{s_auth}","firstName":null,"gender":null,"itemInSession":'
            mid = f',"lastName":null,"length":null,"level":"{s_level}","location":null'
            mid += f',"method":"{method}","page":"{page}","registration":null,"sessionId":'
            tail = ',"userAgent":null,"userId":""}\n'
        return head, mid, f',"song":null,"status":{status},"ts":', tail

    while t_next < end:
        t = int(t_next)
        sid = max(last_sid + 1, 1 + int((t - plan.start) / window * sid_range))
        last_sid = sid
        start_key = (auth, "paid" if paid else "free")
        st = chain.start_dest[start_key][bisect_right(chain.start_cum[start_key], rng.random())]
        item, stop_user = 0, False
        while True:
            if is_song[st]:
                if jt == len(tracks):
                    tracks, jt = np.searchsorted(cdf, rng.random(_BUFFER)).tolist(), 0
                k = tracks[jt]
                jt += 1
                sp = song_pieces[paid]
                if sp is None:
                    sp = song_pieces[paid] = (
                        f'{first},"gender":"{gender}","itemInSession":',
                        f',"lastName":{last},"length":',
                        f',"level":"{"paid" if paid else "free"}","location":{location},"method":"PUT",'
                        f'"page":"NextSong","registration":{registration},"sessionId":',
                    )
                append(f"{heads[k]}{sp[0]}{item}{sp[1]}{lengths[k]}{sp[2]}{sid}{songs[k]}{t}000{user_tail}")
                t_after = t + seconds[k]
            else:
                sp4 = state_pieces[st]
                if sp4 is None:
                    sp4 = state_pieces[st] = pieces(st)
                append(f"{sp4[0]}{item}{sp4[1]}{sid}{sp4[2]}{t}000{sp4[3]}")
                if churn[st]:
                    stop_user = True
                    break
                t_after = t
            item += 1
            if ju == len(uniforms):
                uniforms, ju = rng.random(_BUFFER).tolist(), 0
            u = uniforms[ju]
            ju += 1
            cum = cum_table[st]
            if u >= cum[-1]:
                t = t_after
                break
            nxt = dest_table[st][bisect_right(cum, u)]
            if is_song[st]:
                t = t_after
            elif is_redirect[nxt]:
                t += 1
            else:
                if jg == len(gaps):
                    gaps, jg = (rng.exponential(event_gap, _BUFFER) + 1).astype(np.int64).tolist(), 0
                t += gaps[jg]
                jg += 1
            if t >= end:
                stop_user = True
                break
            if identified[nxt] and registration is None:
                registration = f"{t}000"
            st = nxt
            paid = chain.paid[st]
        if stop_user:
            break
        auth = chain.states[st][1]
        gap = _GUEST_RETRY_GAP if auth == "Guest" else session_gap
        t_next = _next_session(rng, t + _SESSION_PAUSE, gap)
    # Initial users start logged in inside the window; arriving users appear once they register.
    return registration is not None


def _generate_block(plan: _Plan, block: int, part: Path) -> tuple[int, int, int]:
    """Write one block of users to ``part``: (rows, users who appeared with a userId, bytes).

    Workers write their own part files so the log never travels through inter-process pipes.
    """
    lines: list[str] = []
    first = block * BLOCK_USERS
    appeared = sum(_user_lines(i, plan, lines) for i in range(first, min(first + BLOCK_USERS, plan.users)))
    data = "".join(lines).encode()
    part.write_bytes(data)
    return len(lines), appeared, len(data)


# --------------------------------------------------------------------------------------------------
# Arguments, output and parallel driver
# --------------------------------------------------------------------------------------------------


def _parse_date(value: str, name: str) -> int:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"invalid {name} date {value!r}: expected YYYY-MM-DD (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _output_kind(out: Path) -> str:
    name = out.name.lower()
    return "gz" if name.endswith(".json.gz") else "json" if name.endswith(".json") else "dir"


def _check_output(out: Path, kind: str, force: bool) -> None:
    """Refuse to overwrite without ``force`` and fail early (one line) on an unwritable location."""
    if out.exists():
        if not force:
            raise ValueError(f"output {out} already exists: pass --force (force=True) to overwrite it")
        if kind == "dir" and (not out.is_dir() or any(not p.name.startswith("part-") for p in out.iterdir())):
            raise ValueError(f"refusing to overwrite {out}: it is not a directory of generated part files")
        if kind != "dir" and out.is_dir():
            raise ValueError(f"output {out} is a directory: give a file name ending .json or .json.gz")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {out.parent}: {exc.strerror}") from None
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"output directory {out.parent} is not writable: choose another --out")


class _Writer:
    """Collects part files in order into a temporary output, moved into place only when complete."""

    def __init__(self, out: Path, kind: str) -> None:
        self.out, self.kind = out, kind
        self.tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        # Workers write part files here; for directory output these are the output itself.
        self.parts = self.tmp if kind == "dir" else out.with_name(f".{out.name}.parts-{os.getpid()}")
        self.parts.mkdir()
        self.file = None
        if kind == "gz":
            # mtime=0 and no file name in the header keep the archive byte-identical across runs.
            self.raw = open(self.tmp, "wb")  # noqa: SIM115 (closed in close())
            self.file = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=6)
        elif kind == "json":
            self.file = open(self.tmp, "wb")  # noqa: SIM115 (closed in close())

    def part(self, block: int) -> Path:
        """Path a worker writes block ``block`` to."""
        return self.parts / f"part-{block:05d}.json"

    def append(self, block: int) -> None:
        """Append a finished part to a single-file output (in block order) and drop the part."""
        if self.file is None:
            return
        part = self.part(block)
        with open(part, "rb") as source:
            if self.kind == "json":
                self.file.flush()
                size, offset = part.stat().st_size, 0
                while offset < size:  # in-kernel copy: no pass of the bytes through Python
                    offset += os.sendfile(self.file.fileno(), source.fileno(), offset, size - offset)
            else:
                shutil.copyfileobj(source, self.file, 1 << 22)
        part.unlink()

    def close(self, ok: bool) -> None:
        """Move the finished output into place, or remove the partial one."""
        if self.file is not None:
            self.file.close()
            if self.kind == "gz":
                self.raw.close()
            shutil.rmtree(self.parts, ignore_errors=True)
        if not ok:
            shutil.rmtree(self.tmp) if self.tmp.is_dir() else self.tmp.unlink(missing_ok=True)
            return
        if self.out.is_dir():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)


def _blocks_in_order(plan: _Plan, workers: int, writer: _Writer) -> Iterator[tuple[int, tuple[int, int, int]]]:
    """Generate the blocks, yielding them in block order; at most two blocks per worker in flight."""
    n_blocks = -(-plan.users // BLOCK_USERS)
    if workers == 1 or n_blocks == 1:
        for block in range(n_blocks):
            yield block, _generate_block(plan, block, writer.part(block))
        return
    _chain(), _catalogue(plan.seed), _profile_lists()  # built once here, inherited by forked workers
    method = "fork" if "fork" in mp.get_all_start_methods() else None
    with mp.get_context(method).Pool(workers) as pool:
        pending: deque = deque()
        next_block = 0
        while next_block < n_blocks or pending:
            while next_block < n_blocks and len(pending) < 2 * workers:
                task = pool.apply_async(_generate_block, (plan, next_block, writer.part(next_block)))
                pending.append((next_block, task))
                next_block += 1
            block, result = pending.popleft()
            yield block, result.get()


def generate_log(
    out: str | Path,
    users: int = 225,
    start: str = "2018-10-01",
    end: str = "2018-12-03",
    seed: int = 42,
    workers: int = 0,
    force: bool = False,
) -> GenerateSummary:
    """Write a synthetic Sparkify log (``.json``, ``.json.gz`` or a directory of part files).

    ``users`` counts users who appear with a userId (225 ≈ the real mini log, 22,278 ≈ the full
    one); ``start``/``end`` are UTC dates or datetimes (end exclusive); ``workers=0`` uses every core.
    """
    began = time.perf_counter()
    if isinstance(users, bool) or not isinstance(users, int) or users <= 0:
        raise ValueError(f"users must be a positive integer, got {users!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be 0 (all cores) or a positive integer, got {workers!r}")
    start_s, end_s = _parse_date(start, "start"), _parse_date(end, "end")
    if end_s <= start_s:
        raise ValueError(f"end {end!r} must be after start {start!r}")
    out = Path(out).expanduser()
    kind = _output_kind(out)
    _check_output(out, kind, force)
    plan = _Plan(seed=int(seed), users=users, start=start_s, end=end_s)
    writer = _Writer(out, kind)
    rows = appeared = size = 0
    ok = False
    try:
        for block, (n_rows, n_users, n_bytes) in _blocks_in_order(plan, workers or os.cpu_count() or 1, writer):
            writer.append(block)
            rows, appeared, size = rows + n_rows, appeared + n_users, size + n_bytes
        ok = True
    finally:
        writer.close(ok)
    return GenerateSummary(path=str(out), users=appeared, rows=rows, bytes=size,
                           seconds=round(time.perf_counter() - began, 3))
