"""Settings read once from the environment, typed and validated (no Dagster here).

Every knob of the platform is an environment variable read here and nowhere
else. A bad value raises :class:`SettingError`, whose message is one line that
names the variable, so the CLI, the demo and the assets can show it as is.

Examples
--------
>>> import os
>>> os.environ["METRO_SCALE"] = "tiny"
>>> load_settings().scale.name
'tiny'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from metro_assets.errors import SettingError


@dataclass(frozen=True)
class Scale:
    """Size of the simulated retailer.

    ``history_days`` is the history `make demo` simulates; the partitions run
    ``horizon_days`` further so scenario days and run dates after the history
    (e.g. 2026-02-11 at the default scale) exist.
    """

    name: str
    customers: int
    products: int
    stores: int
    history_days: int
    active_offers: int
    horizon_days: int = 28
    categories: int = 20


SCALES = {
    "tiny": Scale("tiny", customers=1_500, products=600, stores=4, history_days=42, active_offers=40),
    "demo": Scale("demo", customers=10_000, products=4_000, stores=20, history_days=90, active_offers=200),
    "default": Scale("default", customers=50_000, products=10_000, stores=50, history_days=180, active_offers=200),
    # 5x the customers of default; a bigger chain opens more stores (denser ones too) and carries a somewhat
    # larger assortment and more live offers, but a store's shelf space and a customer's basket do not grow
    # 5x (docs/SCALING.md explains the choice)
    "large": Scale("large", customers=250_000, products=15_000, stores=200, history_days=180, active_offers=300),
}


@dataclass(frozen=True)
class CandidateLimits:
    """How many offers each retrieval strategy may propose per customer, and the pool's cap."""

    category: int = 80   # METRO_CANDIDATES_CATEGORY (cold start: store popularity)
    segment: int = 60    # METRO_CANDIDATES_SEGMENT (cold start: segment defaults)
    repeat: int = 40     # METRO_CANDIDATES_REPEAT (cold start: essentials)
    margin: int = 20     # METRO_CANDIDATES_MARGIN
    max_candidates: int = 200  # METRO_MAX_CANDIDATES
    embedding: int = 0   # METRO_CANDIDATES_EMBEDDING: nearest offers by item2vec similarity (0: off)


def _limit(name: str, default: int) -> int:
    text = _env(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a whole number") from None
    if not 1 <= value <= 100_000:  # 0 would disable the strategy that guarantees a candidate
        raise SettingError(f"{name}={value} must be between 1 and 100000")
    return value


def load_candidate_limits() -> CandidateLimits:
    """The ``METRO_CANDIDATES_*`` and ``METRO_MAX_CANDIDATES`` settings."""
    limits = CandidateLimits(
        category=_limit("METRO_CANDIDATES_CATEGORY", 80),
        segment=_limit("METRO_CANDIDATES_SEGMENT", 60),
        repeat=_limit("METRO_CANDIDATES_REPEAT", 40),
        margin=_limit("METRO_CANDIDATES_MARGIN", 20),
        max_candidates=_limit("METRO_MAX_CANDIDATES", 200),
        embedding=_count("METRO_CANDIDATES_EMBEDDING", CandidateLimits.embedding),
    )
    return limits


def _count(name: str, default: int, most: int = 100_000) -> int:
    """A whole number in [0, most] (0 switches the thing off)."""
    text = _env(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a whole number") from None
    if not 0 <= value <= most:
        raise SettingError(f"{name}={value} must be between 0 and {most}")
    return value


@dataclass(frozen=True)
class EmbeddingSettings:
    """item2vec product embeddings (``product_embeddings``) and the customer vectors built from them."""

    dim: int = 32            # METRO_EMBEDDING_DIM: vector size
    epochs: int = 3          # METRO_EMBEDDING_EPOCHS: passes over the purchase sequences
    days: int = 90           # METRO_EMBEDDING_DAYS: purchases of this many days before the day (sequences, vectors)
    feature: bool = False    # METRO_EMBEDDING_FEATURE: the ranker's embedding_affinity feature (off: no measured gain)
    half_life: float = 28.0  # METRO_EMBEDDING_HALF_LIFE: days after which a purchase weighs half in a customer vector


def load_embedding_settings() -> EmbeddingSettings:
    """The ``METRO_EMBEDDING_*`` settings."""
    dim = _limit("METRO_EMBEDDING_DIM", EmbeddingSettings.dim)
    if dim > 512:
        raise SettingError(f"METRO_EMBEDDING_DIM={dim} must be at most 512")
    epochs = _limit("METRO_EMBEDDING_EPOCHS", EmbeddingSettings.epochs)
    if epochs > 100:
        raise SettingError(f"METRO_EMBEDDING_EPOCHS={epochs} must be at most 100")
    return EmbeddingSettings(dim=dim, epochs=epochs, days=_limit("METRO_EMBEDDING_DAYS", EmbeddingSettings.days),
                             feature=_flag("METRO_EMBEDDING_FEATURE", EmbeddingSettings.feature),
                             half_life=_positive_float("METRO_EMBEDDING_HALF_LIFE", EmbeddingSettings.half_life))


@dataclass(frozen=True)
class RankerSettings:
    """Training and serving knobs of the ranker."""

    train_weeks: int = 8             # METRO_TRAIN_WEEKS: trailing window of impressions
    negatives_per_positive: int = 4  # METRO_NEGATIVES_PER_POSITIVE: negative sampling in training
    top_k: int = 10                  # METRO_TOP_K: offers recommended per customer
    max_per_category: int = 3        # METRO_MAX_PER_CATEGORY: offers of one category in a customer's top k
    serving_days: int = 7            # METRO_SERVING_DAYS: newest run dates in the serving snapshot
    max_train_weeks: int = 52        # METRO_TRAIN_MAX_WEEKS: how far the window may grow for enough positives
    min_train_positives: int = 500   # METRO_MIN_TRAIN_POSITIVES: fewer in the widest window is a warning
    target_train_positives: int = 2000  # METRO_TARGET_TRAIN_POSITIVES: the window grows until training holds these
    min_validation_positives: int = 50  # METRO_MIN_VALIDATION_POSITIVES: positives validation should hold
    train_label: str = "redemption"  # METRO_TRAIN_LABEL: redemption | product_purchase


TRAIN_LABELS = ("redemption", "product_purchase")


def load_ranker_settings() -> RankerSettings:
    """The ranker's settings: ``METRO_TRAIN_WEEKS``, ``METRO_TRAIN_MAX_WEEKS``, ``METRO_MIN_TRAIN_POSITIVES``,
    ``METRO_TARGET_TRAIN_POSITIVES``, ``METRO_MIN_VALIDATION_POSITIVES``, ``METRO_TRAIN_LABEL``,
    ``METRO_NEGATIVES_PER_POSITIVE``, ``METRO_TOP_K``, ``METRO_MAX_PER_CATEGORY``, ``METRO_SERVING_DAYS``."""
    weeks = _limit("METRO_TRAIN_WEEKS", 8)
    if weeks < 3:  # one week validates, the rest trains, and labels close a week before the day
        raise SettingError(f"METRO_TRAIN_WEEKS={weeks} must be at least 3")
    max_weeks = _limit("METRO_TRAIN_MAX_WEEKS", max(52, weeks))
    if max_weeks < weeks:
        raise SettingError(f"METRO_TRAIN_MAX_WEEKS={max_weeks} must be at least METRO_TRAIN_WEEKS={weeks}")
    label = _env("METRO_TRAIN_LABEL", "redemption").lower()
    if label not in TRAIN_LABELS:
        raise SettingError(f"METRO_TRAIN_LABEL={label!r} is not one of {', '.join(TRAIN_LABELS)}")
    return RankerSettings(
        train_weeks=weeks,
        negatives_per_positive=_limit("METRO_NEGATIVES_PER_POSITIVE", 4),
        top_k=_limit("METRO_TOP_K", 10),
        max_per_category=_limit("METRO_MAX_PER_CATEGORY", 3),
        serving_days=_limit("METRO_SERVING_DAYS", 7),
        max_train_weeks=max_weeks,
        min_train_positives=_limit("METRO_MIN_TRAIN_POSITIVES", 500),
        target_train_positives=_limit("METRO_TARGET_TRAIN_POSITIVES", 2000),
        min_validation_positives=_limit("METRO_MIN_VALIDATION_POSITIVES", 50),
        train_label=label,
    )


@dataclass(frozen=True)
class DriftSettings:
    """PSI thresholds and the drift alert rule (docs/DRIFT.md)."""

    moderate: float = 0.1      # METRO_PSI_MODERATE: PSI from here is a moderate shift (investigate)
    major: float = 0.25        # METRO_PSI_MAJOR: PSI from here is a major shift (retrain recommended)
    alert_features: int = 3    # METRO_DRIFT_ALERT_FEATURES: features at or over `major` that raise the alert
    score_alert: float = 0.25  # METRO_SCORE_PSI_ALERT: a score PSI over this raises the alert on its own


def _positive_float(name: str, default: float) -> float:
    text = _env(name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a number") from None
    if not 0 < value < 100:
        raise SettingError(f"{name}={text} must be a number between 0 and 100 (exclusive)")
    return value


@dataclass(frozen=True)
class PolicySettings:
    """The simulated legacy policy's logging design (see metro_assets/simulation/world.py)."""

    exploration: float = 0.10    # METRO_EXPLORATION: share of slots filled at random from the eligible offers
    holdout_share: float = 0.10  # METRO_HOLDOUT_SHARE: share of customers who see no offers (re-drawn every 4 weeks)


def _share(name: str, default: float) -> float:
    text = _env(name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a number") from None
    if not 0 <= value < 1:
        raise SettingError(f"{name}={text} must be a share between 0 (inclusive) and 1 (exclusive)")
    return value


#: What the allocation step maximises (METRO_OBJECTIVE).
OBJECTIVES = ("redemptions", "incremental_margin")


@dataclass(frozen=True)
class AllocationSettings:
    """The allocation step between scoring and the top k (issue 17; metro_assets/ranking/allocation.py)."""

    objective: str = "redemptions"    # METRO_OBJECTIVE: redemptions | incremental_margin
    offer_budget: float | None = None  # METRO_OFFER_BUDGET: discount money per offer over its life (unset: none)
    uplift_weeks: int = 26            # METRO_UPLIFT_WEEKS: weeks of randomised exposure the uplift learners train on


def load_allocation_settings() -> AllocationSettings:
    """The ``METRO_OBJECTIVE``, ``METRO_OFFER_BUDGET`` and ``METRO_UPLIFT_WEEKS`` settings."""
    objective = _env("METRO_OBJECTIVE", "redemptions").lower()
    if objective not in OBJECTIVES:
        raise SettingError(f"METRO_OBJECTIVE={objective!r} is not one of {', '.join(OBJECTIVES)}")
    budget = None
    if "METRO_OFFER_BUDGET" in os.environ:
        text = _env("METRO_OFFER_BUDGET", "")
        try:
            budget = float(text)
        except ValueError:
            raise SettingError(f"METRO_OFFER_BUDGET={text!r} is not an amount of money") from None
        if not 0 <= budget < 1e12:
            raise SettingError(f"METRO_OFFER_BUDGET={text} must be an amount of money >= 0")
    weeks_text = _env("METRO_UPLIFT_WEEKS", "26")
    try:
        weeks = int(weeks_text)
    except ValueError:
        raise SettingError(f"METRO_UPLIFT_WEEKS={weeks_text!r} is not a whole number") from None
    if not 4 <= weeks <= 104:
        raise SettingError(f"METRO_UPLIFT_WEEKS={weeks} must be between 4 and 104")
    return AllocationSettings(objective, budget, weeks)


#: Devices the deep models (extra ``[deep]``: SASRec, Wide & Deep) may run on (METRO_DEVICE).
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class DeepSettings:
    """Settings of the PyTorch models (extra ``[deep]``)."""

    device: str = "cpu"   # METRO_DEVICE: cpu | cuda | auto (cuda when one is present, else cpu)
    enabled: bool = True  # METRO_DEEP: false switches the deep parts off even where PyTorch is installed


def load_deep_settings() -> DeepSettings:
    """The ``METRO_DEVICE`` and ``METRO_DEEP`` settings."""
    device = _env("METRO_DEVICE", "cpu").lower()
    if device not in DEVICES:
        raise SettingError(f"METRO_DEVICE={device!r} is not one of {', '.join(DEVICES)}")
    return DeepSettings(device=device, enabled=_flag("METRO_DEEP", True))


@dataclass(frozen=True)
class SequenceSettings:
    """Knobs of the SASRec sequence model (asset ``sequence_model``, extra ``[deep]``)."""

    epochs: int = 3        # METRO_SEQUENCE_EPOCHS: training epochs at most (the best on validation is kept)
    max_len: int = 50      # METRO_SEQUENCE_LENGTH: newest purchases of a customer the model reads


def load_sequence_settings() -> SequenceSettings:
    """The ``METRO_SEQUENCE_EPOCHS`` and ``METRO_SEQUENCE_LENGTH`` settings."""
    epochs = _limit("METRO_SEQUENCE_EPOCHS", 3)
    if epochs > 100:
        raise SettingError(f"METRO_SEQUENCE_EPOCHS={epochs} must be between 1 and 100")
    length = _limit("METRO_SEQUENCE_LENGTH", 50)
    if not 2 <= length <= 500:
        raise SettingError(f"METRO_SEQUENCE_LENGTH={length} must be between 2 and 500")
    return SequenceSettings(epochs, length)


@dataclass(frozen=True)
class EvaluationSettings:
    """How the pooled evaluation (``evaluation_summary``) pools run dates."""

    pool_weeks: int = 8  # METRO_EVALUATION_POOL_WEEKS: the summary of D pools the run dates of the N weeks up to D


def load_evaluation_settings() -> EvaluationSettings:
    """The ``METRO_EVALUATION_POOL_WEEKS`` setting (1 to 104 weeks)."""
    weeks = _limit("METRO_EVALUATION_POOL_WEEKS", 8)
    if weeks > 104:
        raise SettingError(f"METRO_EVALUATION_POOL_WEEKS={weeks} must be between 1 and 104")
    return EvaluationSettings(pool_weeks=weeks)


def load_policy_settings() -> PolicySettings:
    """The ``METRO_EXPLORATION`` and ``METRO_HOLDOUT_SHARE`` settings."""
    return PolicySettings(_share("METRO_EXPLORATION", 0.10), _share("METRO_HOLDOUT_SHARE", 0.10))


def load_drift_settings() -> DriftSettings:
    """The ``METRO_PSI_MODERATE``, ``METRO_PSI_MAJOR``, ``METRO_DRIFT_ALERT_FEATURES``, ``METRO_SCORE_PSI_ALERT`` settings."""
    moderate = _positive_float("METRO_PSI_MODERATE", 0.1)
    major = _positive_float("METRO_PSI_MAJOR", 0.25)
    if major <= moderate:
        raise SettingError(f"METRO_PSI_MAJOR={major:g} must be greater than METRO_PSI_MODERATE={moderate:g}")
    return DriftSettings(moderate, major, _limit("METRO_DRIFT_ALERT_FEATURES", 3),
                         _positive_float("METRO_SCORE_PSI_ALERT", 0.25))


#: Policies that can pick the served offers (METRO_POLICY).
SERVING_POLICIES = ("batch", "thompson")


@dataclass(frozen=True)
class BanditSettings:
    """Issue 18: the policy that serves, and the simulated online loop (see metro_assets/bandit/)."""

    policy: str = "batch"      # METRO_POLICY: batch (the weekly ranker's scores) | thompson (sampled daily posterior)
    weeks: int = 8             # METRO_BANDIT_WEEKS: weeks bandit_simulation runs every policy
    start: date | None = None  # METRO_BANDIT_START: its first day (default: the day after the history)


def load_bandit_settings() -> BanditSettings:
    """The ``METRO_POLICY``, ``METRO_BANDIT_WEEKS`` and ``METRO_BANDIT_START`` settings."""
    policy = _env("METRO_POLICY", "batch").lower()
    if policy not in SERVING_POLICIES:
        raise SettingError(f"METRO_POLICY={policy!r} is not one of {', '.join(SERVING_POLICIES)}")
    return BanditSettings(policy, _limit("METRO_BANDIT_WEEKS", 8), _date("METRO_BANDIT_START", "", "2025-11-13"))


#: Behaviour scenarios the simulator can apply after the history (METRO_SCENARIO).
SCENARIOS = ("none", "black_friday")


@dataclass(frozen=True)
class ScenarioSettings:
    """A behaviour shock the simulator applies to some days (see metro_assets/simulation/scenarios.py)."""

    name: str = "none"         # METRO_SCENARIO: none | black_friday
    start: date | None = None  # METRO_SCENARIO_START: first shocked day (default: the day after the run date)
    days: int = 3              # METRO_SCENARIO_DAYS: shocked days


def load_scenario_settings() -> ScenarioSettings:
    """The ``METRO_SCENARIO``, ``METRO_SCENARIO_START`` and ``METRO_SCENARIO_DAYS`` settings."""
    name = _env("METRO_SCENARIO", "none").lower()
    if name not in SCENARIOS:
        raise SettingError(f"METRO_SCENARIO={name!r} is not one of {', '.join(SCENARIOS)}")
    return ScenarioSettings(name, _date("METRO_SCENARIO_START", "", "2026-02-12"), _limit("METRO_SCENARIO_DAYS", 3))


@dataclass(frozen=True)
class OperationsSettings:
    """How runs behave under the daemon (docs/OPERATIONS.md)."""

    lock_timeout: float = 100.0       # METRO_WAREHOUSE_LOCK_TIMEOUT: seconds a step waits for a warehouse another process holds
    retry_delay: float = 30.0         # METRO_RETRY_DELAY: seconds before a failed step's one automatic retry
    retrain_cron: str = "0 4 * * 1"   # METRO_RETRAIN_CRON: when the weekly_retrain schedule fires (UTC)
    pool: str = "warehouse"           # METRO_WAREHOUSE_POOL: the Dagster pool every warehouse-writing step joins


def _seconds(name: str, default: float, low: float) -> float:
    text = _env(name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a number of seconds") from None
    if not low <= value <= 86_400:
        raise SettingError(f"{name}={text} must be between {low:g} and 86400 seconds")
    return value


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_NAMES = {**{m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
               **{d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}}
_CRON_PART = re.compile(r"^(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?$")


def is_valid_cron(text: str) -> bool:
    """Is ``text`` a five-field cron schedule (numbers, names, ``*``, ranges, steps, lists)?

    Examples
    --------
    >>> is_valid_cron("0 4 * * 1"), is_valid_cron("*/15 0-6 1,15 jan mon-fri"), is_valid_cron("0 25 * * *")
    (True, True, False)
    """
    fields = text.lower().split()
    if len(fields) != 5:
        return False
    for value, (_, low, high) in zip(fields, _CRON_FIELDS):
        for part in value.split(","):
            match = _CRON_PART.match(part)
            if not match:
                return False
            if match.group(1) == "*":
                continue
            bounds = match.group(1).split("-")
            numbers = [int(b) if b.isdigit() else _CRON_NAMES.get(b, -1) for b in bounds]
            if any(not low <= n <= high for n in numbers) or numbers != sorted(numbers):
                return False
    return True


def load_operations_settings() -> OperationsSettings:
    """The ``METRO_WAREHOUSE_LOCK_TIMEOUT``, ``METRO_RETRY_DELAY``, ``METRO_RETRAIN_CRON``, ``METRO_WAREHOUSE_POOL`` settings."""
    cron = _env("METRO_RETRAIN_CRON", "0 4 * * 1")
    if not is_valid_cron(cron):
        raise SettingError(f"METRO_RETRAIN_CRON={cron!r} is not a cron schedule like '0 4 * * 1'")
    return OperationsSettings(
        lock_timeout=_seconds("METRO_WAREHOUSE_LOCK_TIMEOUT", 100.0, low=0.1),
        retry_delay=_seconds("METRO_RETRY_DELAY", 30.0, low=0.0),
        retrain_cron=cron,
        pool=_pool_name(_env("METRO_WAREHOUSE_POOL", "warehouse")),
    )


def _pool_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_\-/.]{1,64}", name):
        raise SettingError(f"METRO_WAREHOUSE_POOL={name!r} must be 1-64 letters, digits or _-/.")
    return name


@dataclass(frozen=True)
class DuckDBSettings:
    """How much memory a warehouse connection's DuckDB may take before it spills to disk (docs/SCALING.md)."""

    memory_limit: str = "4GB"  # METRO_DUCKDB_MEMORY_LIMIT: DuckDB's memory_limit (its own default: 80% of RAM)
    temp_directory: str = ""   # METRO_DUCKDB_TEMP_DIRECTORY: where it spills ("": DuckDB's <warehouse>.tmp)


_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def load_duckdb_settings() -> DuckDBSettings:
    """The ``METRO_DUCKDB_MEMORY_LIMIT`` and ``METRO_DUCKDB_TEMP_DIRECTORY`` settings."""
    limit = _env("METRO_DUCKDB_MEMORY_LIMIT", DuckDBSettings.memory_limit)
    if not _MEMORY.match(limit):
        raise SettingError(f"METRO_DUCKDB_MEMORY_LIMIT={limit!r} is not an amount of memory like 8GB or 512MiB")
    return DuckDBSettings(limit, _env("METRO_DUCKDB_TEMP_DIRECTORY", ""))


@dataclass(frozen=True)
class StorageSettings:
    """Where the tables live and how many day partitions may run at once (docs/STORAGE.md)."""

    backend: str = "duckdb"        # METRO_STORAGE: duckdb | delta:<uri> (a local folder or an object-store URI)
    delta_uri: str | None = None   # the <uri> of delta:<uri> (a local folder made absolute), None for duckdb
    parallel_days: int = 1         # METRO_PARALLEL_DAYS: day partitions run at once (Delta only; DuckDB: 1 writer)


def load_storage_settings() -> StorageSettings:
    """The ``METRO_STORAGE`` and ``METRO_PARALLEL_DAYS`` settings."""
    text = _env("METRO_STORAGE", "duckdb")
    uri = None
    if text.lower() == "duckdb":
        backend = "duckdb"
    elif text.lower().startswith("delta:") and text[len("delta:"):].strip():
        backend, uri = "delta", text[len("delta:"):].strip()
        if "://" not in uri:  # a local folder: absolute, so spawned run and step processes agree on it
            folder = Path(uri).expanduser().absolute()
            if folder.exists() and not folder.is_dir():
                raise SettingError(f"METRO_STORAGE={text}: {folder} is a file, not a folder for Delta tables")
            uri = str(folder)
    else:
        raise SettingError(f"METRO_STORAGE={text!r} is not 'duckdb' or 'delta:<folder or URI>'")
    parallel = _limit("METRO_PARALLEL_DAYS", 1)
    if parallel > 64:
        raise SettingError(f"METRO_PARALLEL_DAYS={parallel} must be between 1 and 64")
    if parallel > 1 and backend == "duckdb":
        raise SettingError(f"METRO_PARALLEL_DAYS={parallel} needs METRO_STORAGE=delta:<uri>: "
                           "a DuckDB warehouse has one writer at a time")
    return StorageSettings(backend, uri, parallel)


@dataclass(frozen=True)
class Settings:
    """All settings, validated. Build with :func:`load_settings`."""

    warehouse: Path
    serving: Path
    scale: Scale
    seed: int
    start_date: date
    candidates: CandidateLimits = field(default_factory=CandidateLimits)
    ranker: RankerSettings = field(default_factory=RankerSettings)
    source: str = "simulation"      # METRO_SOURCE: "simulation" or "parquet:<folder>"
    drop_orphans: bool = False      # METRO_IMPORT_DROP_ORPHANS
    import_end: date | None = None  # imports: the day after the last event (the history follows the data)
    import_last_day: date | None = None  # METRO_IMPORT_LAST_DAY: no imported event after it (default: today, UTC)
    drift: DriftSettings = field(default_factory=DriftSettings)
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)
    ops: OperationsSettings = field(default_factory=OperationsSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    deep: DeepSettings = field(default_factory=DeepSettings)
    sequence: SequenceSettings = field(default_factory=SequenceSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    allocation: AllocationSettings = field(default_factory=AllocationSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    bandit: BanditSettings = field(default_factory=BanditSettings)
    duckdb: DuckDBSettings = field(default_factory=DuckDBSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)

    @property
    def import_dir(self) -> Path | None:
        """The folder an import reads (``METRO_SOURCE=parquet:<folder>``), None for the simulation."""
        return Path(self.source.split(":", 1)[1].strip()) if self.source.startswith("parquet:") else None

    @property
    def history_end(self) -> date:
        """First day after the history (simulated, or the import's last event day): the demo run date."""
        if self.import_end is not None:
            return self.import_end
        return self.start_date + timedelta(days=self.scale.history_days)

    @property
    def scenario_days(self) -> tuple[date, date] | None:
        """The [start, end) days ``METRO_SCENARIO`` shocks (default: from the day after the run date), or None."""
        if self.scenario.name == "none":
            return None
        start = self.scenario.start or self.history_end + timedelta(days=1)
        return start, start + timedelta(days=self.scenario.days)

    @property
    def bandit_start(self) -> date:
        """First day of ``bandit_simulation`` (``METRO_BANDIT_START``, default the day after the history)."""
        return self.bandit.start or self.history_end

    @property
    def partitions_end(self) -> date:
        """Exclusive end of the daily partitions."""
        return self.history_end + timedelta(days=self.scale.horizon_days)


def _env(name: str, default: str) -> str:
    """The variable's value, or ``default`` when it is unset.

    A variable set to an empty value (``METRO_SCALE=``) is an error, not the
    default: it is usually a shell variable that was meant to hold something.
    """
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip() == "":
        shown = f" ({default})" if default else ""
        raise SettingError(f"{name} is set but empty: give it a value, or unset it for the default{shown}")
    return value.strip()


def load_settings() -> Settings:
    """Read and validate the ``METRO_*`` environment variables.

    Raises
    ------
    SettingError
        With a one-line message naming the variable at fault.
    """
    scale_name = _env("METRO_SCALE", "default")
    if scale_name not in SCALES:
        raise SettingError(f"METRO_SCALE={scale_name!r} is not one of {', '.join(SCALES)}")
    seed_text = _env("METRO_SEED", "42")
    try:
        seed = int(seed_text)
    except ValueError:
        raise SettingError(f"METRO_SEED={seed_text!r} is not a whole number") from None
    if not 0 <= seed < 2**32:
        raise SettingError(f"METRO_SEED={seed} must be between 0 and 4294967295")
    start = _date("METRO_START_DATE", "2025-08-15", "2025-08-15")
    if start is None or not date(2000, 1, 1) <= start <= date(2100, 1, 1):
        raise SettingError(f"METRO_START_DATE={start} is outside 2000-01-01..2100-01-01")
    source = _env("METRO_SOURCE", "simulation")
    drop_orphans = _flag("METRO_IMPORT_DROP_ORPHANS", False)
    import_end = import_last_day = None
    if source != "simulation":
        import_last_day = _import_last_day()
        explicit = "METRO_START_DATE" in os.environ
        start, import_end = _import_span(source, start, explicit_start=explicit, last_day=import_last_day)
    return Settings(
        warehouse=Path(_env("METRO_WAREHOUSE", "data/warehouse.duckdb")),
        serving=Path(_env("METRO_SERVING", "data/serving.parquet")),
        scale=SCALES[scale_name],
        seed=seed,
        start_date=start,
        candidates=load_candidate_limits(),
        ranker=load_ranker_settings(),
        source=source,
        drop_orphans=drop_orphans,
        import_end=import_end,
        import_last_day=import_last_day,
        drift=load_drift_settings(),
        scenario=load_scenario_settings(),
        ops=load_operations_settings(),
        policy=load_policy_settings(),
        deep=load_deep_settings(),
        sequence=load_sequence_settings(),
        embedding=load_embedding_settings(),
        allocation=load_allocation_settings(),
        evaluation=load_evaluation_settings(),
        bandit=load_bandit_settings(),
        duckdb=load_duckdb_settings(),
        storage=load_storage_settings(),
    )


def _flag(name: str, default: bool) -> bool:
    text = _env(name, str(default).lower()).lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingError(f"{name}={text!r} is not true or false")
    return text in ("true", "1", "yes")


def _date(name: str, default: str, example: str) -> date | None:
    """A date setting (``YYYY-MM-DD``); ``None`` when it and its default are empty."""
    text = _env(name, default)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SettingError(f"{name}={text!r} is not a date like {example}") from None


def _import_last_day() -> date:
    """``METRO_IMPORT_LAST_DAY``: the newest day an imported event may have (default: today, UTC)."""
    return _date("METRO_IMPORT_LAST_DAY", "", "2026-02-10") or datetime.now(timezone.utc).date()


def _import_span(source: str, start: date, explicit_start: bool,
                 last_day: date | None = None) -> tuple[date, date | None]:
    """An import's partitions: from METRO_START_DATE if set, else its first event day, to its last.

    An event after ``last_day`` (an order typed as 2035) does not stretch the
    partitions: they stop at ``last_day`` and the validation reports the row.
    Reads only the event timestamp columns (see ``importing.reading.event_span``).
    When the files cannot tell (missing or unreadable), the defaults stay and
    the raw assets' validation reports what is wrong.
    """
    if not source.startswith("parquet:") or not source.split(":", 1)[1].strip():
        raise SettingError(f"METRO_SOURCE={source!r} is not 'simulation' or 'parquet:<folder>'")
    folder = Path(source.split(":", 1)[1].strip())
    if not folder.is_dir():
        raise SettingError(f"METRO_SOURCE={source}: the folder {folder} does not exist")
    from metro_assets.importing.reading import event_span  # here: the simulation never needs it

    span = event_span(folder)
    if span is None:
        return start, None
    first, last = span
    if last_day is not None:
        last = min(last, last_day)
    if not explicit_start:
        if not date(2000, 1, 1) <= first <= date(2100, 1, 1):
            raise SettingError(f"METRO_SOURCE={source}: the first event day {first} is outside "
                               "2000-01-01..2100-01-01 (set METRO_START_DATE to start later)")
        start = first
    return start, max(last, start) + timedelta(days=1)


def check_writable(path: Path, setting: str) -> None:
    """Fail with one line if ``path`` (a file to create or replace) cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(f"{setting}={path}: cannot create its folder ({exc.strerror})") from None
    if path.is_dir():
        raise SettingError(f"{setting}={path} is a folder, not a file")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SettingError(f"{setting}={path} is not writable")
