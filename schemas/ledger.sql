-- ledger.sql — the run ledger of tessera (SQLite, WAL). Written by rank 0 only.
-- A unit is done only when its output was fsynced, renamed into place and the row below
-- committed with its checksum; a file existing never means done.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- One row per invocation of `tessera run`.
CREATE TABLE IF NOT EXISTS runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  started     TEXT NOT NULL,
  finished    TEXT,
  config_hash TEXT NOT NULL,
  argv        TEXT NOT NULL,
  ranks       INTEGER NOT NULL,
  hosts       TEXT,
  version     TEXT NOT NULL,
  exit_code   INTEGER
);

-- One row per stage; config_hash covers the config keys the stage reads and the hashes of the
-- stages it needs: a different hash means the stage's units are redone.
CREATE TABLE IF NOT EXISTS stages (
  name        TEXT PRIMARY KEY,
  position    INTEGER NOT NULL,
  config_hash TEXT NOT NULL,
  started     TEXT,
  finished    TEXT,
  seconds     REAL
);

CREATE TABLE IF NOT EXISTS units (
  stage         TEXT NOT NULL REFERENCES stages(name) ON DELETE CASCADE,
  unit          TEXT NOT NULL,
  idx           INTEGER NOT NULL,
  state         TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'done', 'failed')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  rank          INTEGER,
  output        TEXT,
  checksum      TEXT,
  bytes         INTEGER,
  seconds       REAL,
  items         INTEGER,
  error_token   TEXT,
  error_message TEXT,
  run_id        INTEGER,
  updated       TEXT,
  PRIMARY KEY (stage, unit)
);
CREATE INDEX IF NOT EXISTS units_state ON units(stage, state);
-- Schema 2 adds, by ALTER TABLE in ledger.c (old ledgers gain them on their next open):
--   units.unit_key  SHA-256 of the unit's own inputs (CSV row, slide file, upstream checksums):
--                   a unit recorded done under another key is redone
--   units.note      a warning the unit completed with ("no tissue: 0 tiles")
--   stages.note     why the stage was left out of the last run ("no label column"), or NULL

-- Every output of a done unit (the main one is also units.output), with its checksum.
CREATE TABLE IF NOT EXISTS outputs (
  stage    TEXT NOT NULL,
  unit     TEXT NOT NULL,
  path     TEXT NOT NULL,
  checksum TEXT NOT NULL,
  bytes    INTEGER,
  PRIMARY KEY (stage, unit, path),
  FOREIGN KEY (stage, unit) REFERENCES units(stage, unit) ON DELETE CASCADE
);

-- Checkpoints of collective stages: a stage resumes from the last step recorded under its
-- current stage hash whose file still has this checksum.
CREATE TABLE IF NOT EXISTS checkpoints (
  stage      TEXT NOT NULL,
  stage_hash TEXT NOT NULL,
  step       INTEGER NOT NULL,
  path       TEXT NOT NULL,
  checksum   TEXT NOT NULL,
  bytes      INTEGER,
  run_id     INTEGER,
  at         TEXT,
  PRIMARY KEY (stage, stage_hash, step)
);

-- Items that could not be processed while their unit completed (a tile whose JPEG does not
-- decode: the slide still gets features for its other tiles). Written with the unit's "done",
-- in the same transaction; forgotten with the unit (a unit redone, a stage reset).
CREATE TABLE IF NOT EXISTS bad_items (
  stage   TEXT NOT NULL,
  unit    TEXT NOT NULL,
  item    INTEGER NOT NULL,
  x       INTEGER,
  y       INTEGER,
  token   TEXT NOT NULL,
  message TEXT,
  PRIMARY KEY (stage, unit, item),
  FOREIGN KEY (stage, unit) REFERENCES units(stage, unit) ON DELETE CASCADE
);

-- Peak resident memory (getrusage ru_maxrss, kB) and CPU seconds of each rank at the end of
-- each stage of each invocation; written by rank 0 after gathering. Read by the report
-- (peak RSS per stage). Additive: older ledgers gain the table, empty, on their next open.
CREATE TABLE IF NOT EXISTS rusage (
  run_id      INTEGER NOT NULL,
  stage       TEXT NOT NULL,
  rank        INTEGER NOT NULL,
  peak_rss_kb INTEGER,
  cpu_seconds REAL,
  PRIMARY KEY (run_id, stage, rank)
);

-- Audit trail: every time a unit is recorded done or failed, a row here, in the same
-- transaction (a trigger). The crash tests count "done" events per unit: exactly once.
CREATE TABLE IF NOT EXISTS events (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER,
  stage  TEXT NOT NULL,
  unit   TEXT NOT NULL,
  event  TEXT NOT NULL,
  at     TEXT
);
CREATE TRIGGER IF NOT EXISTS units_event AFTER UPDATE OF state ON units
  WHEN NEW.state IN ('done', 'failed')
BEGIN
  INSERT INTO events(run_id, stage, unit, event, at) VALUES (NEW.run_id, NEW.stage, NEW.unit, NEW.state, NEW.updated);
END;
