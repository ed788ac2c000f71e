"""The SQL of the PostgreSQL store; ``{s}`` stands for the quoted schema name.

A create or a commit is **one statement** (so one round trip and one transaction, in
autocommit mode): data-modifying CTEs hanging off the header row. The header CTE
(``h``) is the compare-and-set: it matches only when the stored revision is the
expected one (and the batch's first event continues the stored sequence); every other
CTE reads from ``h``, so when ``h`` matched nothing, nothing at all is written. Rows
arrive as parallel arrays unpacked with ``unnest``, so the statement text, and with it
the server's prepared plan, is the same for every batch size.

Under READ COMMITTED a commit that waits for a concurrent one re-checks the header row
once that one is done (EvalPlanQual): it then sees the new revision and matches nothing.
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "COMMIT",
    "CREATE",
    "DELETE",
    "DUE_ALL",
    "DUE_OF",
    "EVENTS_AFTER",
    "EVENTS_BEFORE",
    "HEADER",
    "HOLDER",
    "LIST",
    "NOW_MS",
    "OPS_ALL",
    "OPS_BY_ID",
    "PURGE",
    "SECRET_GET",
    "SECRET_PUT",
    "STATE",
    "TOUCHED",
    "live",
]

#: epoch milliseconds on the database's clock (TTL decisions use one clock for everyone)
NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def live(alias: str) -> str:
    """Return the SQL condition "the execution row ``alias`` has not expired"."""
    return f"({alias}.expires_ms IS NULL OR {alias}.expires_ms > {NOW_MS})"


_WRITES = """
, o AS (
  INSERT INTO {s}.operations AS t (exec_id, op_id, idx, touched, doc)
  SELECT h.exec_id, u.op_id, u.idx, u.touched, u.doc
    FROM h, unnest(%(op_ids)s::text[], %(op_idx)s::bigint[], %(op_touched)s::bigint[],
                   %(op_docs)s::text[]) AS u(op_id, idx, touched, doc)
  ON CONFLICT (exec_id, op_id)
    DO UPDATE SET idx = EXCLUDED.idx, touched = EXCLUDED.touched, doc = EXCLUDED.doc
), e AS (
  INSERT INTO {s}.events (exec_id, event_id, doc)
  SELECT h.exec_id, %(first_event)s + u.ord - 1, u.doc
    FROM h, unnest(%(ev_docs)s::text[]) WITH ORDINALITY AS u(doc, ord)
), dc AS (
  DELETE FROM {s}.due AS d USING h
   WHERE d.exec_id = h.exec_id AND d.key = ANY(%(due_clear)s::text[])
), ds AS (
  INSERT INTO {s}.due AS t (exec_id, key, kind, due_ms, arn, function_name, data)
  SELECT h.exec_id, u.key, u.kind, u.due_ms, %(arn)s, %(fn)s, u.data
    FROM h, unnest(%(due_keys)s::text[], %(due_kinds)s::text[], %(due_ms)s::bigint[],
                   %(due_data)s::text[]) AS u(key, kind, due_ms, data)
  ON CONFLICT (exec_id, key)
    DO UPDATE SET kind = EXCLUDED.kind, due_ms = EXCLUDED.due_ms, data = EXCLUDED.data,
                  claimed_by = NULL, claimed_until = NULL
), n AS (
  SELECT pg_notify(%(channel)s, %(wake)s) FROM h WHERE %(wake)s <> ''
)
SELECT (SELECT count(*) FROM h), (SELECT count(*) FROM n)
"""

CREATE = (
    """
WITH h AS (
  INSERT INTO {s}.executions
    (exec_id, arn, function_name, name, status, start_ms, revision, event_count, cid, doc,
     expires_ms)
  VALUES (%(id)s, %(arn)s, %(fn)s, %(name)s, %(status)s, %(start_ms)s, %(rev)s,
          %(event_count)s, %(cid)s, %(doc)s,
          CASE WHEN %(expire)s THEN """
    + NOW_MS
    + """ + %(ttl_ms)s END)
  ON CONFLICT DO NOTHING
  RETURNING exec_id
)"""
    + _WRITES
)

COMMIT = (
    """
WITH h AS (
  UPDATE {s}.executions AS x
     SET revision = %(rev)s, status = %(status)s, doc = %(doc)s, cid = %(cid)s,
         event_count = coalesce(%(event_count)s::bigint, x.event_count),
         expires_ms = CASE WHEN %(expire)s
                           THEN coalesce(x.expires_ms, """
    + NOW_MS
    + """ + %(ttl_ms)s) END
   WHERE x.exec_id = %(id)s AND x.arn = %(arn)s AND x.revision = %(expected)s
     AND (%(first_event)s = 0 OR x.event_count + 1 = %(first_event)s)
  RETURNING x.exec_id
)"""
    + _WRITES
)

#: why a commit matched nothing: the stored revision, commit id and event count
STATE = "SELECT arn, revision, cid, event_count FROM {s}.executions WHERE exec_id = %s"

#: who holds an execution name, and whether that execution has expired
HOLDER = (
    "SELECT arn, NOT "
    + live("x")
    + " FROM {s}.executions AS x WHERE function_name = %s AND name = %s"
)

HEADER = "SELECT x.doc FROM {s}.executions AS x WHERE x.exec_id = %s AND x.arn = %s AND " + live(
    "x"
)

# Reads of one execution: the header row (existence, expiry) and the rows asked for in one
# statement; a LEFT JOIN LATERAL yields one all-NULL row when there are none.
_ONE = (
    "SELECT r.* FROM {s}.executions AS x LEFT JOIN LATERAL ({inner}) AS r ON true "
    "WHERE x.exec_id = %(id)s AND x.arn = %(arn)s AND " + live("x")
)

OPS_ALL = _ONE.replace(
    "{inner}", "SELECT o.doc FROM {s}.operations AS o WHERE o.exec_id = x.exec_id ORDER BY o.idx"
)
OPS_BY_ID = _ONE.replace(
    "{inner}",
    "SELECT o.doc FROM {s}.operations AS o WHERE o.exec_id = x.exec_id "
    "AND o.op_id = ANY(%(ids)s::text[]) ORDER BY o.idx",
)
TOUCHED = _ONE.replace(
    "{inner}",
    "SELECT o.doc FROM {s}.operations AS o WHERE o.exec_id = x.exec_id "
    "AND o.touched > %(seq)s ORDER BY o.idx",
)
EVENTS_AFTER = _ONE.replace(
    "{inner}",
    "SELECT v.event_id, v.doc FROM {s}.events AS v WHERE v.exec_id = x.exec_id "
    "AND v.event_id > %(after)s ORDER BY v.event_id LIMIT %(limit)s",
)
EVENTS_BEFORE = _ONE.replace(
    "{inner}",
    "SELECT v.event_id, v.doc FROM {s}.events AS v WHERE v.exec_id = x.exec_id "
    "AND v.event_id < %(before)s ORDER BY v.event_id DESC LIMIT %(limit)s",
)
DUE_OF = _ONE.replace(
    "{inner}",
    "SELECT d.key, d.kind, d.due_ms, d.data FROM {s}.due AS d WHERE d.exec_id = x.exec_id "
    "AND d.due_ms <= %(until)s AND (%(any_kind)s OR d.kind = ANY(%(kinds)s::text[])) "
    "ORDER BY d.due_ms, d.key LIMIT %(limit)s",
)

#: the due-time index across executions, earliest first (ties: ARN, then key)
DUE_ALL = (
    "SELECT d.arn, d.key, d.kind, d.due_ms, d.data FROM {s}.due AS d "
    "WHERE d.due_ms <= %(until)s AND (%(any_kind)s OR d.kind = ANY(%(kinds)s::text[])) "
    "ORDER BY d.due_ms, d.arn, d.key LIMIT %(limit)s"
)

# Claim: entries due now of the given kinds and functions that no other worker holds,
# marked as this worker's for a short while. SKIP LOCKED passes over rows another
# worker is claiming (or a commit is changing) at this instant instead of waiting for
# them, so workers spread over the backlog. A claim only steers workers apart: the
# engine's compare-and-set commit still decides who runs what. The last row (arn NULL)
# carries the earliest later due time, which tells an idle worker how long to sleep.
CLAIM = """
WITH c AS (
  SELECT d.exec_id, d.key FROM {s}.due AS d
   WHERE d.due_ms <= %(now)s AND d.kind = ANY(%(kinds)s::text[])
     AND d.function_name = ANY(%(fns)s::text[]) AND d.arn <> ALL(%(exclude)s::text[])
     AND (d.claimed_until IS NULL OR d.claimed_until <= %(now)s OR d.claimed_by = %(owner)s)
   ORDER BY d.due_ms
   LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
), u AS (
  UPDATE {s}.due AS d SET claimed_by = %(owner)s, claimed_until = %(now)s + %(hold_ms)s
    FROM c WHERE d.exec_id = c.exec_id AND d.key = c.key
  RETURNING d.arn, d.key, d.kind, d.due_ms, d.data
)
SELECT arn, key, kind, due_ms, data FROM u
UNION ALL
SELECT NULL, NULL, NULL,
       (SELECT min(d.due_ms) FROM {s}.due AS d
         WHERE d.due_ms > %(now)s AND d.kind = ANY(%(kinds)s::text[])
           AND d.function_name = ANY(%(fns)s::text[])),
       NULL
"""

LIST = "SELECT x.doc FROM {s}.executions AS x WHERE " + live("x")

SECRET_PUT = "INSERT INTO {s}.meta (key, value) VALUES ('secret', %s) ON CONFLICT DO NOTHING"
SECRET_GET = "SELECT value FROM {s}.meta WHERE key = 'secret'"

#: delete up to %(limit)s expired executions and everything that belongs to them
#: removes the rows of the executions a statement's ``x`` deleted, and counts them
_CASCADE = """), o AS (
  DELETE FROM {s}.operations WHERE exec_id IN (SELECT exec_id FROM x)
), e AS (
  DELETE FROM {s}.events WHERE exec_id IN (SELECT exec_id FROM x)
), d AS (
  DELETE FROM {s}.due WHERE exec_id IN (SELECT exec_id FROM x)
)
SELECT count(*) FROM x
"""

#: one execution and every row of it, in one statement; its name is free again after
DELETE = """
WITH x AS (
  DELETE FROM {s}.executions WHERE exec_id = %(id)s AND arn = %(arn)s RETURNING exec_id
""" + _CASCADE

PURGE = (
    """
WITH x AS (
  DELETE FROM {s}.executions WHERE exec_id IN (
    SELECT exec_id FROM {s}.executions
     WHERE expires_ms IS NOT NULL AND expires_ms <= """
    + NOW_MS
    + """
       AND (%(arn)s::text IS NULL OR arn = %(arn)s::text)
     LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
  RETURNING exec_id
"""
    + _CASCADE
)
