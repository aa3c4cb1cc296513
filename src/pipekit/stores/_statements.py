"""The SQL text of the SQL stores, in one dialect per driver (see :func:`statements`).

SQLite and PostgreSQL run the same statements; only the placeholder, how params are
written and read as JSON, and the name of the larger-of-two function differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Statements", "statements"]


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement a SQL store runs, in one dialect (see :func:`statements`)."""

    insert_run: str
    insert_task: str
    start_task: str
    insert_attempt: str
    end_attempt: str
    end_task: str
    finish_task: str
    insert_finished_attempt: str
    set_task_state: str
    end_run: str
    resume_run: str
    reset_task: str
    save_result: str
    load_result: str
    prune_results: str
    prune_old_results: str
    count_pruned: str
    last_position: str
    select_run: str
    select_tasks: str
    run_exists: str
    task_exists: str
    select_attempts: str
    select_task_attempts: str
    claim: str
    release: str
    list_queries: dict[tuple[bool, bool, bool], tuple[str, str]]


_TASK_COLUMNS: Final = "run_id, task_id, state, attempts, error, started_at, ended_at"


def statements(
    mark: str, *, params: str = "params", params_in: str = "?", greatest: str = "MAX"
) -> Statements:
    """Return the statements of one dialect.

    Args:
        mark: the driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg).
        params: how to select the params column as JSON text.
        params_in: how to write the JSON text of params (``?`` or a cast of it).
        greatest: the SQL function returning the larger of two values.
    """
    run_columns = f"id, dag, state, {params}, module, file, error, started_at, ended_at"

    def q(sql: str) -> str:
        return sql.replace("?", mark)

    def list_queries(dag: bool, state: bool, limit: bool) -> tuple[str, str]:
        """The SQL of list_runs() for one combination of filters: runs, then their tasks."""
        conditions = [c for c, on in (("dag = ?", dag), ("state = ?", state)) if on]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        chosen = f"FROM runs{where} ORDER BY started_at DESC, seq DESC{' LIMIT ?' if limit else ''}"
        runs = f"SELECT {run_columns} {chosen}"
        if where or limit:
            tasks = (
                f"SELECT {_TASK_COLUMNS} FROM task_runs"
                f" WHERE run_id IN (SELECT id {chosen}) ORDER BY run_id, position"
            )
        else:
            tasks = f"SELECT {_TASK_COLUMNS} FROM task_runs ORDER BY run_id, position"
        return q(runs), q(tasks)

    attempts = (
        "SELECT a.run_id, a.task_id, a.number, a.state, a.started_at, a.ended_at, a.error"
        " FROM attempts AS a"
        " JOIN task_runs AS t ON t.run_id = a.run_id AND t.task_id = a.task_id"
        " WHERE a.run_id = ?{task} ORDER BY a.started_at, t.position, a.number"
    )
    return Statements(
        insert_run=q(
            "INSERT INTO runs (id, dag, state, params, module, file, started_at)"
            f" VALUES (?, ?, 'running', {params_in}, ?, ?, ?)"
        ),
        insert_task=q(
            "INSERT INTO task_runs (run_id, task_id, position, state) VALUES (?, ?, ?, 'queued')"
        ),
        start_task=q(
            f"UPDATE task_runs SET state = 'running', attempts = {greatest}(attempts, ?),"
            " started_at = COALESCE(started_at, ?) WHERE run_id = ? AND task_id = ?"
        ),
        insert_attempt=q(
            "INSERT INTO attempts (run_id, task_id, number, state, started_at)"
            " VALUES (?, ?, ?, 'running', ?)"
        ),
        end_attempt=q(
            "UPDATE attempts SET state = ?, ended_at = ?, error = ?"
            " WHERE run_id = ? AND task_id = ? AND number = ?"
        ),
        # A result saved with the task's end rides on the same row update (NULL: none).
        end_task=q(
            "UPDATE task_runs SET state = ?, ended_at = ?, error = ?,"
            " result = COALESCE(?, result) WHERE run_id = ? AND task_id = ?"
        ),
        finish_task=q(
            f"UPDATE task_runs SET state = ?, attempts = {greatest}(attempts, ?),"
            " started_at = COALESCE(started_at, ?), ended_at = ?, error = ?,"
            " result = COALESCE(?, result) WHERE run_id = ? AND task_id = ?"
        ),
        insert_finished_attempt=q(
            "INSERT INTO attempts (run_id, task_id, number, state, started_at, ended_at, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        set_task_state=q(
            "UPDATE task_runs SET state = ?, error = COALESCE(?, error)"
            " WHERE run_id = ? AND task_id = ?"
        ),
        end_run=q("UPDATE runs SET state = ?, ended_at = ?, error = ? WHERE id = ?"),
        resume_run=q(
            "UPDATE runs SET state = 'running', ended_at = NULL, error = NULL WHERE id = ?"
        ),
        reset_task=q(
            "UPDATE task_runs SET state = 'queued', error = NULL, started_at = NULL,"
            " ended_at = NULL, result = NULL WHERE run_id = ? AND task_id = ?"
        ),
        save_result=q("UPDATE task_runs SET result = ? WHERE run_id = ? AND task_id = ?"),
        load_result=q("SELECT result FROM task_runs WHERE run_id = ? AND task_id = ?"),
        prune_results=q(
            "UPDATE task_runs SET result = NULL WHERE result IS NOT NULL"
            " AND run_id IN (SELECT id FROM runs WHERE started_at < ?)"
        ),
        # The table saved values lived in before schema 3, kept for older processes.
        prune_old_results=q(
            "DELETE FROM results WHERE run_id IN (SELECT id FROM runs WHERE started_at < ?)"
        ),
        count_pruned=q(
            "SELECT count(DISTINCT t.run_id) FROM task_runs AS t JOIN runs ON runs.id = t.run_id"
            " WHERE t.result IS NOT NULL AND runs.started_at < ?"
        ),
        last_position=q("SELECT COALESCE(MAX(position), -1) FROM task_runs WHERE run_id = ?"),
        select_run=q(f"SELECT {run_columns} FROM runs WHERE id = ?"),
        select_tasks=q(f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? ORDER BY position"),
        run_exists=q("SELECT 1 FROM runs WHERE id = ?"),
        task_exists=q("SELECT 1 FROM task_runs WHERE run_id = ? AND task_id = ?"),
        select_attempts=q(attempts.format(task="")),
        select_task_attempts=q(attempts.format(task=" AND a.task_id = ?")),
        claim=q(
            "INSERT INTO claims (dag, key, owner, claimed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (dag, key) DO NOTHING"
        ),
        release=q("DELETE FROM claims WHERE dag = ? AND key = ? AND owner = ?"),
        list_queries={
            (d, s, n): list_queries(d, s, n)
            for d in (False, True)
            for s in (False, True)
            for n in (False, True)
        },
    )
