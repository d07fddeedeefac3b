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

import numpy as np

from sparkify_utils.data.schema import PAGE_METHOD_STATUS
from sparkify_utils.synth.behaviour import (
    BLOCK_USERS,
    BUFFER,
    DAY,
    EVENT_GAP,
    EVENT_PACE_SIGMA,
    GUEST_RETRY_GAP,
    INITIAL_FREE,
    NEW_USER_SHARE,
    NORMAL,
    PERSONAS,
    SESSION_GAP,
    SESSION_ID_RANGE_PER_USER,
    SESSION_PACE_SIGMA,
    SESSION_PAUSE,
    TENURE_CAP_DAYS,
    TENURE_MEAN_DAYS,
    next_session,
    profile_lists,
    song_catalogue,
    transition_chain,
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
    n_new = max(1, round(NEW_USER_SHARE * users)) if users >= 10 else 0
    return (i + 1) * n_new // users > i * n_new // users


def _user_lines(i: int, plan: _Plan, out: list[str]) -> bool:
    """Append user ``i``'s events (JSON lines) to ``out``; True if the user appeared with a userId."""
    chain, cat, lists = transition_chain(), song_catalogue(plan.seed), profile_lists()
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
    z = NORMAL.inv_cdf((pace_ranks[i] + max(rng.random(), 1e-12)) / plan.users)  # inv_cdf(0) is -inf
    session_gap = SESSION_GAP * math.exp(SESSION_PACE_SIGMA * z - SESSION_PACE_SIGMA**2 / 2)
    event_gap = EVENT_GAP * rng.lognormal(-(EVENT_PACE_SIGMA**2) / 2, EVENT_PACE_SIGMA)
    window = plan.end - plan.start
    new_user = _is_new_user(i, plan.users)
    if new_user:
        auth, paid, registration = "Guest", False, None
        t_next = plan.start + rng.random() * 0.8 * window
    else:
        auth, paid = "Logged In", rng.random() >= INITIAL_FREE
        tenure = min(rng.exponential(TENURE_MEAN_DAYS), TENURE_CAP_DAYS) * DAY
        registration = f"{int(plan.start - tenure)}000"
        t_next = next_session(rng, plan.start, session_gap)
        if t_next >= plan.end:  # a slow user still appears once in the window
            t_next = plan.start + rng.random() * 0.95 * window
    sid_range = SESSION_ID_RANGE_PER_USER * plan.users
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
                    tracks, jt = np.searchsorted(cdf, rng.random(BUFFER)).tolist(), 0
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
                uniforms, ju = rng.random(BUFFER).tolist(), 0
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
                    gaps, jg = (rng.exponential(event_gap, BUFFER) + 1).astype(np.int64).tolist(), 0
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
        gap = GUEST_RETRY_GAP if auth == "Guest" else session_gap
        t_next = next_session(rng, t + SESSION_PAUSE, gap)
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
    transition_chain(), song_catalogue(plan.seed), profile_lists()  # built once here, inherited by forked workers
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
    return GenerateSummary(
        path=str(out), users=appeared, rows=rows, bytes=size, seconds=round(time.perf_counter() - began, 3)
    )
