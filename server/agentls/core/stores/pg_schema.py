"""The team database's schema: versioned migrations, the ledger's functions and two roles' grants.

`agentls db init` runs `init_database`: it creates the `agentls` schema or migrates it to
`SCHEMA_VERSION`, one migration per version, in one transaction; a database whose schema is newer
than this agentls is refused. Stores opening the database call `check_version` and refuse a
missing, older or newer schema with one sentence.

Two roles: `agentls_member` may reserve, commit and release (through the ledger's functions, which
run as the schema's owner and touch only what a model call needs), append audit events and read
everything; `agentls_admin` may also change limits, reset usage and prune or delete audit events.
A member has no UPDATE or DELETE on any table, so the database itself refuses a member's attempt
to change a limit or erase the team's audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentls.core.stores.postgres import (
    ADMIN_ROLE,
    MEMBER_ROLE,
    SCHEMA,
    DatabaseRefused,
    connect,
    database_error,
    missing_schema,
    shown_url,
)

SCHEMA_VERSION = 2
# Taken by `db init` so two inits at once run one after the other.
_INIT_LOCK = 0x6167_656E_746C_7301

_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE {SCHEMA}.schema_version (
    version  integer PRIMARY KEY,
    applied  timestamptz NOT NULL DEFAULT now(),
    by_user  text NOT NULL DEFAULT current_user
);
CREATE TABLE {SCHEMA}.scopes (
    scope     text PRIMARY KEY,              -- 'total', 'agent:<name>', 'run:<id>'
    lim       bigint CHECK (lim IS NULL OR lim >= 0),
    input     bigint NOT NULL DEFAULT 0,     -- committed usage, by part
    cached    bigint NOT NULL DEFAULT 0,
    output    bigint NOT NULL DEFAULT 0,
    reasoning bigint NOT NULL DEFAULT 0,
    estimated boolean NOT NULL DEFAULT false,
    reserved  bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),  -- held by calls in flight
    listed    boolean NOT NULL DEFAULT false, -- shown in snapshots (committed to, or limited)
    updated   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {SCHEMA}.reservations (      -- leases: renewed by their holder, expired ones freed
    id         text PRIMARY KEY,
    run_id     text NOT NULL,
    agent      text NOT NULL,
    tokens     bigint NOT NULL CHECK (tokens >= 0),
    scopes     text[] NOT NULL,
    "user"     text,
    host       text NOT NULL,
    pid_space  text NOT NULL,                -- boot and pid namespace: where `pid` means something
    pid        integer NOT NULL,
    pid_start  text,
    workspace  text,
    front_end  text,
    created    timestamptz NOT NULL DEFAULT now(),
    expires    timestamptz NOT NULL
);
CREATE INDEX reservations_by_expiry ON {SCHEMA}.reservations (expires);
CREATE INDEX reservations_by_pid_space ON {SCHEMA}.reservations (pid_space);
CREATE TABLE {SCHEMA}.waiters (           -- calls waiting for reservations in flight to settle
    scope     text NOT NULL,
    id        text NOT NULL,
    host      text NOT NULL,
    pid_space text NOT NULL,
    pid       integer NOT NULL,
    pid_start text,
    since     timestamptz NOT NULL DEFAULT now(),
    expires   timestamptz NOT NULL,
    PRIMARY KEY (scope, id)
);
CREATE INDEX waiters_by_id ON {SCHEMA}.waiters (id);
CREATE TABLE {SCHEMA}.ledger_entries (    -- one per committed model call; a replay is a no-op
    res_id     text PRIMARY KEY,
    time       timestamptz NOT NULL DEFAULT now(),
    run_id     text NOT NULL,
    agent      text NOT NULL,
    scopes     text[] NOT NULL,
    input      bigint NOT NULL,
    cached     bigint NOT NULL,
    output     bigint NOT NULL,
    reasoning  bigint NOT NULL,
    estimated  boolean NOT NULL,
    "user"     text,
    host       text,
    workspace  text,
    front_end  text
);
CREATE INDEX ledger_entries_by_time ON {SCHEMA}.ledger_entries (time);
CREATE INDEX ledger_entries_by_run ON {SCHEMA}.ledger_entries (run_id);
CREATE INDEX ledger_entries_by_user ON {SCHEMA}.ledger_entries ("user", time);
CREATE INDEX ledger_entries_by_agent ON {SCHEMA}.ledger_entries (agent, time);
CREATE TABLE {SCHEMA}.events (
    event_id      text PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY,
    time          double precision NOT NULL,
    run_id        text NOT NULL,
    parent_run_id text,
    depth         integer NOT NULL,
    agent         text NOT NULL,
    kind          text NOT NULL,
    status        text NOT NULL,
    json          text NOT NULL,
    "user"        text,
    host          text,
    pid_space     text,
    workspace     text,
    front_end     text
);
CREATE INDEX events_by_run ON {SCHEMA}.events (run_id, kind);
CREATE INDEX events_by_time ON {SCHEMA}.events (time);
CREATE INDEX events_by_agent ON {SCHEMA}.events (agent, time);
CREATE INDEX events_by_kind ON {SCHEMA}.events (kind, time);
CREATE INDEX events_by_parent ON {SCHEMA}.events (parent_run_id);
CREATE INDEX events_by_user ON {SCHEMA}.events ("user", time);
CREATE INDEX events_by_workspace ON {SCHEMA}.events (workspace, time);
"""

# The ledger's writes a member may make, each one statement from the client. They run as the
# schema's owner (SECURITY DEFINER) with a fixed search_path, and touch only reservations, usage
# and run limits: limits of the total and of agents stay the admins'.
_FUNCTIONS = f"""
CREATE FUNCTION {SCHEMA}.reserve(
    p_id text, p_run_id text, p_agent text, p_tokens bigint, p_scopes text[], p_user text,
    p_host text, p_pid_space text, p_pid integer, p_pid_start text, p_workspace text,
    p_front_end text, p_lease double precision
) RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text;
    done text[] := '{{}}';
BEGIN
    -- One conditional UPDATE a scope, under its row lock: a concurrent one waits for the lock and
    -- re-checks the condition on the new row, so no interleaving can hold more than the limit.
    FOREACH s IN ARRAY p_scopes LOOP
        UPDATE {SCHEMA}.scopes SET reserved = reserved + p_tokens
         WHERE scope = s AND (lim IS NULL OR lim - input - output - reserved >= p_tokens);
        IF NOT FOUND THEN
            -- A scope seen for the first time has no limit yet.
            INSERT INTO {SCHEMA}.scopes (scope, reserved) VALUES (s, p_tokens)
            ON CONFLICT (scope) DO NOTHING;
            IF NOT FOUND THEN
                UPDATE {SCHEMA}.scopes SET reserved = reserved - p_tokens WHERE scope = ANY (done);
                RETURN s;
            END IF;
        END IF;
        done := done || s;
    END LOOP;
    INSERT INTO {SCHEMA}.reservations (id, run_id, agent, tokens, scopes, "user", host, pid_space,
        pid, pid_start, workspace, front_end, expires)
    VALUES (p_id, p_run_id, p_agent, p_tokens, p_scopes, p_user, p_host, p_pid_space, p_pid,
        p_pid_start, p_workspace, p_front_end, now() + make_interval(secs => p_lease));
    RETURN NULL;
END $$;

CREATE FUNCTION {SCHEMA}.settle(
    p_id text, p_commit boolean, p_run_id text, p_agent text, p_scopes text[], p_input bigint,
    p_cached bigint, p_output bigint, p_reasoning bigint, p_estimated boolean, p_user text,
    p_host text, p_workspace text, p_front_end text
) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    held record;
    u bigint[] := CASE WHEN p_commit THEN ARRAY[p_input, p_cached, p_output, p_reasoning]
                       ELSE ARRAY[0, 0, 0, 0]::bigint[] END;
BEGIN
    IF p_commit THEN
        INSERT INTO {SCHEMA}.ledger_entries (res_id, run_id, agent, scopes, input, cached, output,
            reasoning, estimated, "user", host, workspace, front_end)
        VALUES (p_id, p_run_id, p_agent, p_scopes, p_input, p_cached, p_output, p_reasoning,
            p_estimated, p_user, p_host, p_workspace, p_front_end)
        ON CONFLICT (res_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN false;  -- committed before (a journal replayed twice): nothing to add
        END IF;
    END IF;
    DELETE FROM {SCHEMA}.reservations WHERE id = p_id RETURNING tokens, scopes INTO held;
    IF FOUND AND held.scopes = p_scopes THEN
        -- One write a scope: the reservation out, the usage in.
        UPDATE {SCHEMA}.scopes SET reserved = reserved - held.tokens, input = input + u[1],
            cached = cached + u[2], output = output + u[3], reasoning = reasoning + u[4],
            estimated = estimated OR (p_commit AND p_estimated), listed = listed OR p_commit,
            updated = now()
         WHERE scope = ANY (p_scopes);
        RETURN true;
    END IF;
    IF FOUND THEN
        UPDATE {SCHEMA}.scopes SET reserved = reserved - held.tokens WHERE scope = ANY (held.scopes);
    END IF;
    IF p_commit THEN  -- its lease ran out (or it is replayed): the usage still counts
        INSERT INTO {SCHEMA}.scopes AS s (scope, input, cached, output, reasoning, estimated, listed)
        SELECT unnest(p_scopes), p_input, p_cached, p_output, p_reasoning, p_estimated, true
        ON CONFLICT (scope) DO UPDATE SET input = s.input + excluded.input,
            cached = s.cached + excluded.cached, output = s.output + excluded.output,
            reasoning = s.reasoning + excluded.reasoning,
            estimated = s.estimated OR excluded.estimated, listed = true, updated = now();
    END IF;
    RETURN true;
END $$;

CREATE FUNCTION {SCHEMA}.set_run_limit(p_scope text, p_lim bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_scope NOT LIKE 'run:%' THEN
        RAISE EXCEPTION 'only a run''s limit is set this way, not %', p_scope
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO {SCHEMA}.scopes (scope, lim) VALUES (p_scope, p_lim)
    ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim;
END $$;

CREATE FUNCTION {SCHEMA}.join_queue(
    p_id text, p_scopes text[], p_host text, p_pid_space text, p_pid integer, p_pid_start text,
    p_lease double precision
) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO {SCHEMA}.waiters (scope, id, host, pid_space, pid, pid_start, expires)
    SELECT unnest(p_scopes), p_id, p_host, p_pid_space, p_pid, p_pid_start,
           now() + make_interval(secs => p_lease)
    ON CONFLICT (scope, id) DO UPDATE SET expires = excluded.expires;
$$;

CREATE FUNCTION {SCHEMA}.leave_queue(p_id text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM {SCHEMA}.waiters WHERE id = p_id;
$$;

CREATE FUNCTION {SCHEMA}.renew(p_ids text[], p_lease double precision)
RETURNS SETOF text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE {SCHEMA}.waiters SET expires = now() + make_interval(secs => p_lease)
     WHERE id = ANY (p_ids);
    UPDATE {SCHEMA}.reservations SET expires = now() + make_interval(secs => p_lease)
     WHERE id = ANY (p_ids) RETURNING id;
$$;

-- Frees expired leases (anyone's) and what processes of this pid space that are gone still hold.
CREATE FUNCTION {SCHEMA}.sweep(p_pid_space text, p_pids integer[], p_starts text[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gone record;
    freed integer := 0;
BEGIN
    FOR gone IN
        DELETE FROM {SCHEMA}.reservations r
         WHERE r.expires < now()
            OR (r.pid_space = p_pid_space AND EXISTS (
                SELECT 1 FROM unnest(p_pids, p_starts) AS d(pid, start)
                 WHERE d.pid = r.pid AND d.start IS NOT DISTINCT FROM r.pid_start))
        RETURNING r.tokens, r.scopes
    LOOP
        UPDATE {SCHEMA}.scopes SET reserved = reserved - gone.tokens
         WHERE scope = ANY (gone.scopes);
        freed := freed + 1;
    END LOOP;
    DELETE FROM {SCHEMA}.waiters w
     WHERE w.expires < now()
        OR (w.pid_space = p_pid_space AND EXISTS (
            SELECT 1 FROM unnest(p_pids, p_starts) AS d(pid, start)
             WHERE d.pid = w.pid AND d.start IS NOT DISTINCT FROM w.pid_start));
    RETURN freed;
END $$;
"""

_MEMBER_FUNCTIONS = (
    "reserve(text, text, text, bigint, text[], text, text, text, integer, text, text, text, "
    "double precision)",
    "settle(text, boolean, text, text, text[], bigint, bigint, bigint, bigint, boolean, text, "
    "text, text, text)",
    "set_run_limit(text, bigint)",
    "join_queue(text, text[], text, text, integer, text, double precision)",
    "leave_queue(text)",
    "renew(text[], double precision)",
    "sweep(text, integer[], text[])",
    "open_window(text, text)",
)

_GRANTS = [
    f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM PUBLIC",
    f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {SCHEMA} FROM PUBLIC",
    f"GRANT USAGE ON SCHEMA {SCHEMA} TO {MEMBER_ROLE}, {ADMIN_ROLE}",
    f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {MEMBER_ROLE}, {ADMIN_ROLE}",
    # Appending is all a member may do to the audit trail: no UPDATE, no DELETE.
    f"GRANT INSERT ON {SCHEMA}.events TO {MEMBER_ROLE}, {ADMIN_ROLE}",
    *(
        f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{f} TO {MEMBER_ROLE}, {ADMIN_ROLE}"
        for f in _MEMBER_FUNCTIONS
    ),
    f"GRANT INSERT, UPDATE, DELETE ON {SCHEMA}.scopes TO {ADMIN_ROLE}",
    f"GRANT DELETE ON {SCHEMA}.events, {SCHEMA}.ledger_entries TO {ADMIN_ROLE}",
]

# Version 2: periods (core/budget_limits.py). A member opens a period's window with the limit
# an admin set on its template, and only that: the window must be the template's, one level down.
_WINDOWS = f"""
CREATE FUNCTION {SCHEMA}.open_window(p_window text, p_template text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rest text := substr(p_window, length(p_template) + 2);
BEGIN
    IF p_template !~ '^(day|week|month)/[^/]+$' OR left(p_window, length(p_template) + 1)
       <> p_template || '/' OR rest = '' OR position('/' in rest) > 0 THEN
        RAISE EXCEPTION '% is not a window of %', p_window, p_template
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO {SCHEMA}.scopes (scope, lim)
    SELECT p_window, t.lim FROM {SCHEMA}.scopes t WHERE t.scope = p_template
    ON CONFLICT (scope) DO UPDATE SET lim = excluded.lim;
END $$;
"""

MIGRATIONS: dict[int, str] = {1: _TABLES + _FUNCTIONS, 2: _WINDOWS}


@dataclass
class InitReport:
    """What `init_database` did."""

    before: int  # the schema version found (0: none)
    after: int
    roles_created: list[str] = field(default_factory=list)
    granted: list[tuple[str, str]] = field(default_factory=list)  # (login role, agentls role)


def schema_version(conn: Any) -> int:
    """The version of the agentls schema in this database; 0 when there is none."""
    row = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)).fetchone()
    if row is None or row[0] is None:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchone()
    return int(row[0] or 0)


def too_new(url: str, found: int) -> DatabaseRefused:
    return DatabaseRefused(
        shown_url(url),
        f"holds agentls schema version {found}, newer than this agentls understands "
        f"(version {SCHEMA_VERSION})",
        "upgrade agentls on this machine to the version the team uses",
    )


def check_version(url: str, conn: Any) -> None:
    """Refuse a database without the schema, or with one older or newer than this agentls."""
    found = schema_version(conn)
    if found == 0:
        raise missing_schema(url)
    if found > SCHEMA_VERSION:
        raise too_new(url, found)
    if found < SCHEMA_VERSION:
        raise DatabaseRefused(
            shown_url(url),
            f"holds agentls schema version {found}, older than this agentls needs "
            f"({SCHEMA_VERSION})",
            "an admin migrates it with `agentls --database-url URL db init`",
        )


def init_database(
    url: str, *, members: Sequence[str] = (), admins: Sequence[str] = ()
) -> InitReport:
    """Create or migrate the schema, the two roles and their grants; grant roles to users."""
    import psycopg

    conn = connect(url)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            found = schema_version(conn)
            if found > SCHEMA_VERSION:
                raise too_new(url, found)
            report = InitReport(before=found, after=SCHEMA_VERSION)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[version])
                conn.execute(
                    f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (version,)
                )
            report.roles_created = _ensure_roles(conn, url)
            for statement in _GRANTS:
                conn.execute(statement)
            for user in members:
                conn.execute(_grant_role(MEMBER_ROLE, user))
                report.granted.append((user, MEMBER_ROLE))
            for user in admins:
                conn.execute(_grant_role(ADMIN_ROLE, user))
                report.granted.append((user, ADMIN_ROLE))
        return report
    except psycopg.Error as exc:
        raise database_error(
            url,
            exc,
            doing="create or migrate the agentls schema and its roles",
            who_may="only the database's owner or a superuser may: run `agentls db init` as the "
            "user that created the schema (docs/team.md)",
        ) from None
    finally:
        conn.close()


def _grant_role(role: str, user: str) -> Any:
    from psycopg import sql

    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(user))


def _ensure_roles(conn: Any, url: str) -> list[str]:
    """Create the member and admin roles where they do not exist yet (admins are members too)."""
    created = []
    for role in (MEMBER_ROLE, ADMIN_ROLE):
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            continue
        can = conn.execute(
            "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not (can and can[0]):
            raise DatabaseRefused(
                shown_url(url),
                f"has no role {role}, and this user may not create roles",
                f"ask the database's administrator to run `CREATE ROLE {role} NOLOGIN` "
                "(or run db init as a user with CREATEROLE)",
            )
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        created.append(role)
    conn.execute(f"GRANT {MEMBER_ROLE} TO {ADMIN_ROLE}")
    return created
