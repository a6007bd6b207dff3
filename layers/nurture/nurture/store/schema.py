"""The single table, item by item: one PynamoDB model per kind of item.

These models are the one definition of the table's layout — every key
prefix, every attribute's stored (short) name, the two indexes and the TTL
attribute. The repositories, erasure, the export and the local stack's table
creation all take them from here; nothing outside `nurture.store` spells a
key or an attribute name.

  item            pk / sk                                   model
  lead            LEAD#<id> / PROFILE                       LeadItem (gsi1: ACCOUNT#<domain> / LEAD#<id>;
                                                            gsi2: the sweeps' due index)
  event           LEAD#<id> / EVT#<messageId>               EventItem, expiring after the retention period
  lifecycle move  LEAD#<id> / STAGE#<version>               EventItem (kind "lifecycle"), same retention
  merged device   LEAD#<id> / ALIAS#<anonymous lead id>     AliasItem: a device merged in, beyond the newest
                                                            the lead item lists (erasure reads them)
  identity        ID#<kind>#<value> / ID                    IdentityItem: email, user or anon -> lead id
  tombstone       ERASED#<sha256> / TOMBSTONE               TombstoneItem: an erased person, hashed
  enrollment      LEAD#<id> / ENR#<track>#<seq>             EnrollmentItem
  touch           LEAD#<id> / TOUCH#<enrollment>#<step>     TouchItem
  content claim   LEAD#<id> / CONTENT#<content id>          ContentClaimItem: sent to the lead, by this touch
  send log        LEAD#<id> / SENDLOG                       SendLogItem: recent marketing sends, for the cap
  soft bounces    LEAD#<id> / SOFTBOUNCE                    SoftBounceItem
  sweep budget    SWEEP#budget / <yyyy-mm-dd>               SweepBudgetItem
  audience member AUDIENCE#<id> / MEMBER#<platform>#<lead>  AudienceMemberItem: hashed identity last sent

The ingest hot path does not load PynamoDB: it reads the lead, event and
identity layout from `nurture.store.layout`, which `make layout` generates
from these models (docs/ARCHITECTURE.md has the figures).

Every item carries its kind in `t` (PynamoDB's discriminator), so a scan or a
partition query reads each item back as its own model. Items written before
`t` existed are recognised by their sort key (`model_of`).

The models are bound to the deployment's table and the process's one
DynamoDB client by `bind`, so PynamoDB's requests go through the same client,
retries and metering as the rest of the store.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.attributes import (
    Attribute,
    DiscriminatorAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.constants import LIST, MAP
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from nurture.store.values import from_attribute, key_item, to_attribute

# --- attribute types ----------------------------------------------------------


class Number(NumberAttribute):
    """A number read back as int when whole, stored with 12 significant digits."""

    def serialize(self, value: Any) -> str:
        return to_attribute(value)["N"]

    def deserialize(self, value: str) -> Any:
        return from_attribute({"N": value})


class Document(Attribute[dict[str, Any]]):
    """A map of plain JSON-like values, read back as a plain dict (not a MapAttribute)."""

    attr_type = MAP

    def serialize(self, value: dict[str, Any]) -> dict[str, Any]:
        return {str(k): to_attribute(v) for k, v in value.items()}

    def deserialize(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: from_attribute(v) for k, v in value.items()}


class DocumentList(Attribute[list[Any]]):
    """A list of plain JSON-like values, read back as a plain list."""

    attr_type = LIST

    def serialize(self, value: list[Any]) -> list[dict[str, Any]]:
        return [to_attribute(v) for v in value]

    def deserialize(self, value: list[dict[str, Any]]) -> list[Any]:
        return [from_attribute(v) for v in value]


def epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def expiry(seconds: float) -> datetime | None:
    return datetime.fromtimestamp(int(seconds), UTC) if seconds else None


# --- the table --------------------------------------------------------------


class AccountIndex(GlobalSecondaryIndex["NurtureItem"]):
    """gsi1: the leads of a company (ACCOUNT#<domain> / LEAD#<id>), keys only."""

    class Meta:
        index_name = "gsi1"
        projection = KeysOnlyProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class DueIndex(GlobalSecondaryIndex["NurtureItem"]):
    """gsi2: the sweeps' sparse due index (DUE#<shard> / <due epoch, 11 digits>#<lead id>), keys only.

    Only leads some sweep will have work for carry it, so a sweep reads the
    due leads and never the table."""

    PREFIX = "DUE#"

    class Meta:
        index_name = "gsi2"
        projection = KeysOnlyProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class NurtureItem(Model):
    """Any item of the table: its keys, its kind, its expiry and the indexes."""

    class Meta:
        table_name = "nurture"  # the deployment's table is set by bind()
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = DiscriminatorAttribute(attr_name="t")
    expires_at = TTLAttribute(null=True)  # DynamoDB's TTL deletes the item after this moment

    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    account_index = AccountIndex()
    due_index = DueIndex()


LEAD_PREFIX = "LEAD#"


def lead_partition(lead_id: str) -> str:
    """A lead's partition: its profile, events, enrollments, touches."""
    return f"{LEAD_PREFIX}{lead_id}"


def lead_of_partition(pk: str) -> str | None:
    return pk[len(LEAD_PREFIX) :] if pk.startswith(LEAD_PREFIX) else None


class LeadItem(NurtureItem, discriminator="lead"):
    """LEAD#<id> / PROFILE: the lead. Attribute names are short: the whole
    item is rewritten on every scored batch, and every byte is billed."""

    PREFIX = LEAD_PREFIX
    SK = "PROFILE"
    ACCOUNT = "ACCOUNT#"

    email = UnicodeAttribute(attr_name="em", null=True)
    user_id = UnicodeAttribute(attr_name="uid", null=True)
    anonymous_ids = DocumentList(attr_name="anon", null=True)
    profile = Document(attr_name="prof", null=True)
    fit_grade = UnicodeAttribute(attr_name="fg", null=True)
    fit_score = Number(attr_name="fs", null=True)
    engagement = Number(attr_name="eng", null=True)
    engagement_at = Number(attr_name="eat", null=True)
    caps = Document(attr_name="caps", null=True)
    lifecycle = UnicodeAttribute(attr_name="lc", null=True)
    lifecycle_at = Number(attr_name="lcat", null=True)
    lifecycle_reason = UnicodeAttribute(attr_name="lcr", null=True)
    lost_at = Number(attr_name="lost_at", null=True)
    sales = Document(attr_name="sales", null=True)
    consent = UnicodeAttribute(attr_name="cs", null=True)
    preferences = Document(attr_name="pref", null=True)
    preferences_at = Number(attr_name="prefat", null=True)
    consent_at = Number(attr_name="csat", null=True)
    milestones = Document(attr_name="ms", null=True)
    buying_stage = UnicodeAttribute(attr_name="bs", null=True)
    buying = Document(attr_name="buy", null=True)
    interests = Document(attr_name="int", null=True)
    consumed = DocumentList(attr_name="cons", null=True)
    pending = DocumentList(attr_name="pe", null=True)  # [lead id, message id] applied, not yet seen stored
    pending_moves = DocumentList(attr_name="pm", null=True)  # stage moves not yet seen stored
    aliases = DocumentList(attr_name="als", null=True)
    merged_into = UnicodeAttribute(attr_name="mi", null=True)
    outbox = DocumentList(attr_name="ob", null=True)
    created_at = Number(attr_name="cat", null=True)
    last_seen_at = Number(attr_name="lsa", null=True)
    woken_at = Number(attr_name="wkat", null=True)
    demoted_from = UnicodeAttribute(attr_name="dmf", null=True)
    email_engaged_at = Number(attr_name="eeat", null=True)
    sunset = Document(attr_name="sun", null=True)
    due_key = UnicodeAttribute(attr_name="gdue", null=True)  # gsi2sk to restore once the outbox is published
    version = VersionAttribute(attr_name="v")

    @classmethod
    def key(cls, lead_id: str) -> tuple[str, str]:
        return lead_partition(lead_id), cls.SK

    @property
    def lead_id(self) -> str:
        """The lead's id, from its key (not stored twice)."""
        return lead_of_partition(self.pk) or ""

    @classmethod
    def account_key(cls, domain: str) -> str:
        return f"{cls.ACCOUNT}{domain}"

    @staticmethod
    def account_sort_key(fit_grade: str) -> str:
        """gsi1sk: an account's leads sort best fit first (A..D)."""
        return fit_grade


# What LeadItem stores beside the Lead's own fields: the due key to restore
# and when the preferences changed. (The lead's id is its key's.)
LEAD_BOOKKEEPING = ("due_key", "preferences_at")


class EventItem(NurtureItem, discriminator="event"):
    """LEAD#<id> / EVT#<messageId>: a stored event; STAGE#<version> for a
    lifecycle move (its own prefix, so no client messageId can collide)."""

    EVENT = "EVT#"
    STAGE = "STAGE#"

    event_kind = UnicodeAttribute(attr_name="k")
    name = UnicodeAttribute(attr_name="n")
    timestamp = Number(attr_name="ts")
    source = UnicodeAttribute(attr_name="src", null=True)
    properties = UnicodeAttribute(attr_name="pr", null=True)  # compact JSON
    points = DocumentList(attr_name="pts", null=True)  # [rule id, points] as awarded
    content = DocumentList(attr_name="cid", null=True)

    @classmethod
    def key(cls, lead_id: str, message_id: str, lifecycle: bool = False) -> tuple[str, str]:
        return lead_partition(lead_id), f"{cls.STAGE if lifecycle else cls.EVENT}{message_id}"

    @classmethod
    def message_id_of(cls, sk: str) -> str:
        return sk.split("#", 1)[1]


class AliasItem(NurtureItem, discriminator="alias"):
    """LEAD#<id> / ALIAS#<anonymous lead id>: an anonymous lead merged into this
    one that the lead item no longer lists (it keeps the newest, bounded), so
    erasure still finds every device's history."""

    PREFIX = "ALIAS#"

    @classmethod
    def key(cls, lead_id: str, alias: str) -> tuple[str, str]:
        return lead_partition(lead_id), f"{cls.PREFIX}{alias}"


class IdentityItem(NurtureItem, discriminator="identity"):
    """ID#<kind>#<value> / ID: who an email, user id or anonymous id is."""

    PREFIX = "ID#"
    SK = "ID"

    lead_id = UnicodeAttribute(attr_name="lid")

    @classmethod
    def key(cls, identity: str) -> tuple[str, str]:
        """`identity` as "<kind>#<value>" (email, user or anon; repository.identity_key)."""
        return f"{cls.PREFIX}{identity}", cls.SK

    @classmethod
    def identity_of(cls, pk: str) -> str:
        return pk[len(cls.PREFIX) :]


class TombstoneItem(NurtureItem, discriminator="tombstone"):
    """ERASED#<sha256> / TOMBSTONE: an erased person's identity, hashed, so it
    is never re-imported or mailed."""

    PREFIX = "ERASED#"
    SK = "TOMBSTONE"

    erased_at = Number(attr_name="erased_at", null=True)

    @classmethod
    def key(cls, identity: str) -> tuple[str, str]:
        """Only the identity's SHA-256 is kept, never the address."""
        return f"{cls.PREFIX}{hashlib.sha256(identity.encode()).hexdigest()}", cls.SK


class EnrollmentItem(NurtureItem, discriminator="enrollment"):
    """LEAD#<id> / ENR#<track>#<seq>: a lead's run through a nurture track."""

    PREFIX = "ENR#"

    enrollment_id = UnicodeAttribute(attr_name="enrollment_id")
    lead_id = UnicodeAttribute(attr_name="lead_id")
    track_id = UnicodeAttribute(attr_name="track_id")
    seq = Number(attr_name="seq")
    status = UnicodeAttribute(attr_name="status", null=True)
    step = Number(attr_name="step", null=True)
    due_at = Number(attr_name="due_at", null=True)
    pending = Document(attr_name="pending", null=True)
    decision_seq = Number(attr_name="decision_seq", null=True)
    last_decision = Document(attr_name="last_decision", null=True)
    variants = Document(attr_name="variants", null=True)
    started_at = Number(attr_name="started_at", null=True)
    ended_at = Number(attr_name="ended_at", null=True)
    exit_reason = UnicodeAttribute(attr_name="exit_reason", null=True)
    trigger = UnicodeAttribute(attr_name="trigger", null=True)
    version = VersionAttribute(attr_name="version")

    @classmethod
    def key(cls, lead_id: str, track_id: str, seq: int) -> tuple[str, str]:
        return lead_partition(lead_id), f"{cls.PREFIX}{track_id}#{seq:03d}"


class TouchItem(NurtureItem, discriminator="touch"):
    """LEAD#<id> / TOUCH#<enrollment id>#<step id>: a touch, claimed before it is
    acted on. A claim "sending" holds until `lease_until` (wall-clock epoch
    seconds); past it, the retry of the same work may take the claim over."""

    PREFIX = "TOUCH#"

    lead_id = UnicodeAttribute(attr_name="lead_id")
    enrollment_id = UnicodeAttribute(attr_name="enrollment_id")
    track_id = UnicodeAttribute(attr_name="track_id")
    step_id = UnicodeAttribute(attr_name="step_id")
    channel = UnicodeAttribute(attr_name="channel")
    at = Number(attr_name="at")
    content_id = UnicodeAttribute(attr_name="content_id", null=True)
    variant = UnicodeAttribute(attr_name="variant", null=True)
    subject = UnicodeAttribute(attr_name="subject", null=True)
    klass = UnicodeAttribute(attr_name="klass", null=True)
    status = UnicodeAttribute(attr_name="status", null=True)
    message_id = UnicodeAttribute(attr_name="message_id", null=True)
    recipient = UnicodeAttribute(attr_name="recipient", null=True)
    lease_until = Number(attr_name="lease", null=True)
    published_at = Number(attr_name="published_at", null=True)

    @classmethod
    def key(cls, lead_id: str, touch_id: str) -> tuple[str, str]:
        return lead_partition(lead_id), f"{cls.PREFIX}{touch_id}"


class ContentClaimItem(NurtureItem, discriminator="content"):
    """LEAD#<id> / CONTENT#<content id>: the lead was sent this piece, by this touch."""

    PREFIX = "CONTENT#"

    touch = UnicodeAttribute(attr_name="touch")
    at = Number(attr_name="at", null=True)

    @classmethod
    def key(cls, lead_id: str, content_id: str) -> tuple[str, str]:
        return lead_partition(lead_id), f"{cls.PREFIX}{content_id}"


class SendLogItem(NurtureItem, discriminator="sendlog"):
    """LEAD#<id> / SENDLOG: the lead's recent marketing sends, [time, touch id],
    so concurrent tracks cannot pass the cap."""

    SK = "SENDLOG"

    sends = DocumentList(attr_name="sends", null=True)
    version = VersionAttribute(attr_name="version")

    @classmethod
    def key(cls, lead_id: str) -> tuple[str, str]:
        return lead_partition(lead_id), cls.SK


class SoftBounceItem(NurtureItem, discriminator="softbounce"):
    """LEAD#<id> / SOFTBOUNCE: the lead's recent transient bounces, one entry
    "<epoch>#<SES message id>" per message (a set: counting is idempotent)."""

    SK = "SOFTBOUNCE"

    bounces = UnicodeSetAttribute(attr_name="tb", null=True)

    @classmethod
    def key(cls, lead_id: str) -> tuple[str, str]:
        return lead_partition(lead_id), cls.SK


class SweepBudgetItem(NurtureItem, discriminator="budget"):
    """SWEEP#budget / <yyyy-mm-dd>: how many leads the sweeps processed that day."""

    PK = "SWEEP#budget"

    spent = Number(attr_name="spent", null=True)

    @classmethod
    def key(cls, day: str) -> tuple[str, str]:
        return cls.PK, day


class AudienceMemberItem(NurtureItem, discriminator="member"):
    """AUDIENCE#<audience id> / MEMBER#<platform>#<lead id>: the hashed identity
    last sent to the platform for the lead. One partition per audience, so a
    reconciliation reads what the audiences hold, never the whole table."""

    PREFIX = "AUDIENCE#"
    MEMBER = "MEMBER#"

    email = UnicodeAttribute(attr_name="em", null=True)  # SHA-256 hex
    phone = UnicodeAttribute(attr_name="ph", null=True)  # SHA-256 hex
    at = Number(attr_name="at", null=True)

    @classmethod
    def partition(cls, audience_id: str) -> str:
        return f"{cls.PREFIX}{audience_id}"

    @classmethod
    def key(cls, audience_id: str, platform: str, lead_id: str) -> tuple[str, str]:
        return cls.partition(audience_id), f"{cls.MEMBER}{platform}#{lead_id}"

    def place(self) -> tuple[str, str, str]:
        """(audience id, platform, lead id)."""
        _, platform, lead_id = self.sk.split("#", 2)
        return self.pk[len(self.PREFIX) :], platform, lead_id


MODELS: tuple[type[NurtureItem], ...] = (
    LeadItem,
    EventItem,
    AliasItem,
    IdentityItem,
    TombstoneItem,
    EnrollmentItem,
    TouchItem,
    ContentClaimItem,
    SendLogItem,
    SoftBounceItem,
    SweepBudgetItem,
    AudienceMemberItem,
)


def model_of(pk: str, sk: str) -> type[NurtureItem]:
    """The model of an item by its key (for items that predate the `t` attribute)."""
    if sk == LeadItem.SK:
        return LeadItem
    if sk.startswith((EventItem.EVENT, EventItem.STAGE)):
        return EventItem
    if sk.startswith(AliasItem.PREFIX):
        return AliasItem
    if sk == IdentityItem.SK:
        return IdentityItem
    if sk == TombstoneItem.SK:
        return TombstoneItem
    if sk.startswith(EnrollmentItem.PREFIX):
        return EnrollmentItem
    if sk.startswith(TouchItem.PREFIX):
        return TouchItem
    if sk.startswith(ContentClaimItem.PREFIX):
        return ContentClaimItem
    if sk == SendLogItem.SK:
        return SendLogItem
    if sk == SoftBounceItem.SK:
        return SoftBounceItem
    if pk == SweepBudgetItem.PK:
        return SweepBudgetItem
    if pk.startswith(AudienceMemberItem.PREFIX):
        return AudienceMemberItem
    raise ValueError(f"no model for item {pk} / {sk}")


M = TypeVar("M", bound=NurtureItem)


def read(raw: dict[str, Any], model: type[M] | None = None) -> M | NurtureItem:
    """An item as DynamoDB returned it, as its model (by `t`, else by its key)."""
    if "t" not in raw:
        model = model_of(raw["pk"]["S"], raw["sk"]["S"])  # type: ignore[assignment]
    return (model or NurtureItem).from_raw_data(raw)


# --- the layout the hot path reads ---------------------------------------------


def _stored_names(model: type[NurtureItem], leave: tuple[str, ...] = ()) -> dict[str, str]:
    own = NurtureItem.get_attributes()
    return {
        name: attribute.attr_name
        for name, attribute in model.get_attributes().items()
        if name not in own and name not in leave
    }


def layout() -> dict[str, Any]:
    """What the ingest hot path needs of the models as plain constants: the
    names, kinds and key prefixes of leads, events, identities and tombstones,
    and the indexes. `make layout` writes them to nurture/store/layout.py (so
    the hot path never loads PynamoDB); tests/unit/test_schema.py fails when
    that file and the models disagree."""
    kind = NurtureItem.kind
    return {
        "KIND": kind.attr_name,
        "LEAD_KIND": kind.serialize(LeadItem),
        "EVENT_KIND": kind.serialize(EventItem),
        "IDENTITY_KIND": kind.serialize(IdentityItem),
        "ALIAS_KIND": kind.serialize(AliasItem),
        "ALIAS_PREFIX": AliasItem.PREFIX,
        "EXPIRES_AT": NurtureItem.expires_at.attr_name,
        "LEAD_PREFIX": LeadItem.PREFIX,
        "LEAD_SK": LeadItem.SK,
        "ACCOUNT_PREFIX": LeadItem.ACCOUNT,
        "LEAD_ATTRIBUTES": _stored_names(LeadItem, leave=LEAD_BOOKKEEPING),
        "LEAD_VERSION": LeadItem.version.attr_name,
        "LEAD_OUTBOX": LeadItem.outbox.attr_name,
        "LEAD_DUE_KEY": LeadItem.due_key.attr_name,
        "EVENT_PREFIX": EventItem.EVENT,
        "STAGE_PREFIX": EventItem.STAGE,
        "EVENT_ATTRIBUTES": _stored_names(EventItem),
        "IDENTITY_PREFIX": IdentityItem.PREFIX,
        "IDENTITY_SK": IdentityItem.SK,
        "IDENTITY_LEAD_ID": IdentityItem.lead_id.attr_name,
        "TOMBSTONE_PREFIX": TombstoneItem.PREFIX,
        "TOMBSTONE_SK": TombstoneItem.SK,
        "ACCOUNT_INDEX": AccountIndex.Meta.index_name,
        "ACCOUNT_INDEX_KEYS": (NurtureItem.gsi1pk.attr_name, NurtureItem.gsi1sk.attr_name),
        "DUE_INDEX": DueIndex.Meta.index_name,
        "DUE_INDEX_KEYS": (NurtureItem.gsi2pk.attr_name, NurtureItem.gsi2sk.attr_name),
        "DUE_PREFIX": DueIndex.PREFIX,
    }


def render_layout() -> str:
    lines = [
        '"""The table\'s layout for the ingest hot path, as plain constants.',
        "",
        "Generated from the PynamoDB models of nurture/store/schema.py by `make layout`:",
        "do not edit. The hot path reads it so that it never loads PynamoDB (cold",
        "start); tests/unit/test_schema.py fails when it and the models disagree.",
        '"""',
        "",
    ]
    lines += [f"{name} = {value!r}" for name, value in layout().items()]
    return "\n".join(lines) + "\n"


# --- binding ----------------------------------------------------------------

_bound: tuple[int, str] | None = None


def bind(client: Any, table_name: str) -> None:
    """Point every model at `table_name` through `client` (a boto3 DynamoDB
    client), so PynamoDB's requests share its connection pool, retries,
    endpoint and any event hooks (the benchmark counts requests with them).

    One table per process, as in Lambda; rebinding is cheap and idempotent."""
    global _bound
    if _bound == (id(client), table_name):
        return
    NurtureItem.Meta.table_name = table_name
    NurtureItem.Meta.region = client.meta.region_name
    NurtureItem.Meta.host = client.meta.endpoint_url
    for model in (NurtureItem, *MODELS):
        model._connection = None
    connection = NurtureItem._get_connection()
    connection.connection._client = client  # PynamoDB's own would be a second client per cold start
    for model in MODELS:
        model._connection = connection
    _bound = (id(client), table_name)


def table_definition(table_name: str) -> dict[str, Any]:
    """The CreateTable request of the table, from the models (the local stack
    creates its table with it; a test holds template.yaml's LeadsTable to it)."""
    schema = NurtureItem._get_schema()
    return {
        "TableName": table_name,
        "BillingMode": NurtureItem.Meta.billing_mode,
        "AttributeDefinitions": schema["attribute_definitions"],
        "KeySchema": schema["key_schema"],
        "GlobalSecondaryIndexes": [
            {"IndexName": index["index_name"], "KeySchema": index["key_schema"], "Projection": index["projection"]}
            for index in schema["global_secondary_indexes"]
        ],
    }


def time_to_live_attribute() -> str:
    return NurtureItem.expires_at.attr_name


def tag_untyped_items(client: Any, table_name: str) -> dict[str, int]:
    """Give every item written before the kind attribute existed its kind
    (a paged Scan, then one conditional UpdateItem per untagged item; items of
    no model are left alone). Safe to run while the pipeline runs and to run
    again. Returns {kind: items tagged}, and "unknown" for items left alone."""
    tagged: dict[str, int] = {}
    kind = NurtureItem.kind.attr_name
    request: dict[str, Any] = {"TableName": table_name, "ProjectionExpression": "pk, sk, #kind"}
    request["ExpressionAttributeNames"] = {"#kind": kind}
    while True:
        response = client.scan(**request)
        for item in response["Items"]:
            if kind in item:
                continue
            try:
                value = NurtureItem.kind.serialize(model_of(item["pk"]["S"], item["sk"]["S"]))
            except ValueError:
                tagged["unknown"] = tagged.get("unknown", 0) + 1
                continue
            try:
                client.update_item(
                    TableName=table_name,
                    Key=key_item(item["pk"]["S"], item["sk"]["S"]),
                    UpdateExpression="SET #kind = :kind",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#kind)",
                    ExpressionAttributeNames={"#kind": kind},
                    ExpressionAttributeValues={":kind": {"S": value}},
                )
            except client.exceptions.ConditionalCheckFailedException:
                continue  # deleted or tagged meanwhile
            tagged[value] = tagged.get(value, 0) + 1
        if "LastEvaluatedKey" not in response:
            return tagged
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
