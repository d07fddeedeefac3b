"""The Sparkify event format: fields, page catalogue and time units (plain constants, no Spark import)."""

from __future__ import annotations

#: The 18 fields of a raw event, in the order the real files write them.
RAW_FIELDS = (
    "artist",
    "auth",
    "firstName",
    "gender",
    "itemInSession",
    "lastName",
    "length",
    "level",
    "location",
    "method",
    "page",
    "registration",
    "sessionId",
    "song",
    "status",
    "ts",
    "userAgent",
    "userId",
)

#: page -> (HTTP method, status), fixed per page in eventsim.
PAGE_METHOD_STATUS = {
    "About": ("GET", 200),
    "Help": ("GET", 200),
    "Home": ("GET", 200),
    "Register": ("GET", 200),
    "Settings": ("GET", 200),
    "Upgrade": ("GET", 200),
    "Downgrade": ("GET", 200),
    "Roll Advert": ("GET", 200),
    "Cancellation Confirmation": ("GET", 200),
    "Error": ("GET", 404),
    "NextSong": ("PUT", 200),
    "Add to Playlist": ("PUT", 200),
    "Submit Registration": ("PUT", 307),
    "Login": ("PUT", 307),
    "Logout": ("PUT", 307),
    "Save Settings": ("PUT", 307),
    "Submit Upgrade": ("PUT", 307),
    "Submit Downgrade": ("PUT", 307),
    "Cancel": ("PUT", 307),
    "Add Friend": ("PUT", 307),
    "Thumbs Up": ("PUT", 307),
    "Thumbs Down": ("PUT", 307),
}

#: The 22 page names of the real data.
PAGES = tuple(sorted(PAGE_METHOD_STATUS))

#: The page of a song play.
SONG_PAGE = "NextSong"

#: The event that defines churn.
CHURN_PAGE = "Cancellation Confirmation"

#: Pages that reveal the label and so never feed a feature.
CANCEL_PAGES = ("Cancel", CHURN_PAGE)

#: ``auth`` values of rows without a user (``userId == ""``).
ANONYMOUS_AUTH = ("Logged Out", "Guest")

#: ``ts`` and ``registration`` are epoch milliseconds (UTC).
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
