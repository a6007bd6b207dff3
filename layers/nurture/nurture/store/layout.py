"""The table's layout for the ingest hot path, as plain constants.

Generated from the PynamoDB models of nurture/store/schema.py by `make layout`:
do not edit. The hot path reads it so that it never loads PynamoDB (cold
start); tests/unit/test_schema.py fails when it and the models disagree.
"""

KIND = "t"
LEAD_KIND = "lead"
EVENT_KIND = "event"
IDENTITY_KIND = "identity"
ALIAS_KIND = "alias"
ALIAS_PREFIX = "ALIAS#"
EXPIRES_AT = "expires_at"
LEAD_PREFIX = "LEAD#"
LEAD_SK = "PROFILE"
ACCOUNT_PREFIX = "ACCOUNT#"
LEAD_ATTRIBUTES = {
    "aliases": "als",
    "anonymous_ids": "anon",
    "buying": "buy",
    "buying_stage": "bs",
    "caps": "caps",
    "consent": "cs",
    "consent_at": "csat",
    "consumed": "cons",
    "created_at": "cat",
    "demoted_from": "dmf",
    "email": "em",
    "email_engaged_at": "eeat",
    "engagement": "eng",
    "engagement_at": "eat",
    "fit_grade": "fg",
    "fit_score": "fs",
    "interests": "int",
    "last_seen_at": "lsa",
    "lifecycle": "lc",
    "lifecycle_at": "lcat",
    "lifecycle_reason": "lcr",
    "lost_at": "lost_at",
    "merged_into": "mi",
    "milestones": "ms",
    "outbox": "ob",
    "pending": "pe",
    "pending_moves": "pm",
    "preferences": "pref",
    "profile": "prof",
    "sales": "sales",
    "sunset": "sun",
    "user_id": "uid",
    "version": "v",
    "woken_at": "wkat",
}
LEAD_VERSION = "v"
LEAD_OUTBOX = "ob"
LEAD_DUE_KEY = "gdue"
EVENT_PREFIX = "EVT#"
STAGE_PREFIX = "STAGE#"
EVENT_ATTRIBUTES = {
    "content": "cid",
    "event_kind": "k",
    "name": "n",
    "points": "pts",
    "properties": "pr",
    "source": "src",
    "timestamp": "ts",
}
IDENTITY_PREFIX = "ID#"
IDENTITY_SK = "ID"
IDENTITY_LEAD_ID = "lid"
TOMBSTONE_PREFIX = "ERASED#"
TOMBSTONE_SK = "TOMBSTONE"
ACCOUNT_INDEX = "gsi1"
ACCOUNT_INDEX_KEYS = ("gsi1pk", "gsi1sk")
DUE_INDEX = "gsi2"
DUE_INDEX_KEYS = ("gsi2pk", "gsi2sk")
DUE_PREFIX = "DUE#"
