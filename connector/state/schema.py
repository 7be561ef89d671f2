"""The state DB's schema, as the migrations that build it. Never edit one that has shipped:
a DB made by an older crmsync is brought up to date by running the ones after its version."""

from __future__ import annotations

# Each migration moves the schema from version N-1 to N; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        dry_run INTEGER NOT NULL DEFAULT 0,
        counts TEXT NOT NULL DEFAULT '{}',
        api_calls TEXT NOT NULL DEFAULT '{}',
        message TEXT
    );
    CREATE TABLE watermarks (
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT,
        cursor TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (system, object_type, kind)
    );
    CREATE TABLE links (
        a TEXT NOT NULL,
        b TEXT NOT NULL,
        first_seen_run INTEGER,
        PRIMARY KEY (a, b)
    );
    CREATE TABLE mirror (
        ref TEXT PRIMARY KEY,
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        record_id TEXT NOT NULL,
        record TEXT NOT NULL,
        modified_at TEXT,
        seen_run INTEGER
    );
    CREATE INDEX mirror_object ON mirror (system, object_type);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        record_id TEXT NOT NULL,
        field TEXT NOT NULL,
        before TEXT,
        after TEXT,
        rule TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX audit_run ON audit (run_id);
    CREATE TABLE rejects (
        ref TEXT NOT NULL,
        field TEXT NOT NULL DEFAULT '',
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        code TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        last_run INTEGER,
        resolved INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ref, field, stage)
    );
    CREATE TABLE lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        run_id INTEGER,
        owner TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        heartbeat REAL NOT NULL
    );
    """,
    # 2: incremental planning. `digest` fingerprints what planning reads of a record (all but
    # its modification time), `dirty` marks records changed since a run last planned them,
    # `identity` indexes the keys that tie records into one planning group, and `plan_dates`
    # holds the days a record's plan changes by itself (a trigger starts or expires).
    """
    ALTER TABLE mirror ADD COLUMN digest TEXT;
    ALTER TABLE mirror ADD COLUMN dirty INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX mirror_dirty ON mirror (dirty) WHERE dirty = 1;
    CREATE TABLE identity (
        key TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (key, ref)
    ) WITHOUT ROWID;
    CREATE INDEX identity_ref ON identity (ref);
    CREATE INDEX links_b ON links (b);
    CREATE TABLE plan_dates (
        on_date TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (on_date, ref)
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (name, value)
        SELECT 'identity_complete', '1' WHERE NOT EXISTS (SELECT 1 FROM mirror);
    """,
    # 3: deletions and merges keep the mirror row, flagged, so a merge can name its survivor and
    # a record read again is revived; `token` tells a run its own lock from one taken over.
    """
    ALTER TABLE mirror ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mirror ADD COLUMN deleted_at TEXT;
    ALTER TABLE mirror ADD COLUMN merged_into TEXT;
    ALTER TABLE lock ADD COLUMN token TEXT;
    """,
    # 4: links derived from data (a shared e-mail or domain, a CRM id) were saved here and
    # re-applied by every later run, so a merge outlived the data that made it. Reconcile
    # now derives them afresh each run; this table keeps only links a person asserts, and
    # every row so far was derived. Identity keys no longer hold placeholder, free-mail or
    # role keys: a mirrored DB is re-indexed (and so planned whole) by its next plan.
    """
    DELETE FROM links;
    DELETE FROM meta WHERE name = 'identity_complete' AND EXISTS (SELECT 1 FROM mirror);
    """,
    # 5: audit before write. A run records each batch's changes as `intent` rows, committed
    # before the batch is sent, and gives each its outcome (applied, rejected, retry_later)
    # once the CRM answers. A run killed in between leaves intents, which the next run
    # resolves against the CRM (applied, or not_applied), so every change that reached a CRM
    # is audited under the run that made it, and that run can be rolled back. Rows from
    # before were written only once applied.
    """
    ALTER TABLE audit ADD COLUMN status TEXT NOT NULL DEFAULT 'applied';
    ALTER TABLE audit ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audit ADD COLUMN batch INTEGER;
    ALTER TABLE audit ADD COLUMN resolved_at TEXT;
    CREATE INDEX audit_intent ON audit (run_id) WHERE status = 'intent';
    """,
    # 6: duplicates, two or more records of one system linked into one person or
    # organisation: one row per record, `grp` the group's first record. A run replaces the
    # rows of the records it plans, so the table holds every group found, however few
    # records the latest run planned.
    """
    CREATE TABLE duplicates (
        ref TEXT PRIMARY KEY,
        grp TEXT NOT NULL,
        entity TEXT NOT NULL,
        system TEXT NOT NULL,
        linked_by TEXT NOT NULL,
        found_run INTEGER
    );
    CREATE INDEX duplicates_grp ON duplicates (grp);
    """,
    # 7: `crmsync history RECORD` reads one record's changes across every run.
    """
    CREATE INDEX audit_record ON audit (system, object_type, record_id);
    """,
    # 8: why each change was made (the plan's reason), for `crmsync history`; rows from before
    # have none.
    """
    ALTER TABLE audit ADD COLUMN reason TEXT;
    """,
    # 9: the report's numbers. `tally` holds one row per live person and organisation record:
    # its own stage as its system holds it (`digest`: of the mirrored copy it was read from)
    # and its entity's reconciled values, `entity` naming the entity's first record. A run
    # replaces the rows of the groups it plans and, at its end, the stage of the records it
    # wrote. `snapshots` keeps each run's totals, taken in the transaction that records the
    # run's end, so a report shows "before" and a history without replaying the audit log;
    # `same_as` names the earlier run whose totals a run left unchanged. Forgetting the
    # mapping planned with makes the next run plan, and so tally, every record once.
    """
    CREATE TABLE tally (
        ref TEXT PRIMARY KEY,
        system TEXT NOT NULL,
        kind TEXT NOT NULL,
        entity TEXT NOT NULL,
        stage TEXT,
        counted INTEGER NOT NULL DEFAULT 1,
        digest TEXT,
        entity_stage TEXT,
        fit INTEGER,
        priority TEXT,
        triggers TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    CREATE TABLE snapshots (
        run_id INTEGER PRIMARY KEY,
        taken_at TEXT NOT NULL,
        totals TEXT,
        same_as INTEGER
    );
    DELETE FROM meta WHERE name = 'planned_mapping';
    """,
    # 10: Salesforce Bulk API 2.0 jobs (connector/state/jobs.py). A job's id is saved, with the
    # run and audit batch whose intents it carries, before its data is uploaded; a run killed
    # or stopped while the job ran leaves the row open, and the next run collects the job's
    # results instead of sending the same records again. `collected_at` is set once its
    # outcome is recorded.
    """
    CREATE TABLE bulk_jobs (
        job_id TEXT PRIMARY KEY,
        system TEXT NOT NULL,
        object_type TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        batch INTEGER NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        records INTEGER NOT NULL,
        state TEXT NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        collected_at TEXT
    );
    CREATE INDEX bulk_jobs_open ON bulk_jobs (run_id) WHERE collected_at IS NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
