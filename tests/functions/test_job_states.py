"""The job's states and transitions: one table, and docs/architecture.md draws it."""

from __future__ import annotations

from pathlib import Path

from cutouts.job_states import FINAL, NEW, OPEN, TRANSITIONS, Status, mermaid

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_documented_state_diagram_is_the_one_the_table_draws():
    # Given the job-states diagram in docs/architecture.md and the table the store applies
    page = ARCHITECTURE.read_text()
    # Then the page holds exactly the diagram drawn from the table
    assert f"```mermaid\n{mermaid()}\n```" in page


def test_every_state_is_reachable_and_every_open_state_can_end():
    # Given the transitions as edges
    edges = {(source, t.target) for t in TRANSITIONS.values() if t.target for source in t.sources}
    reachable, frontier = set(), {NEW}
    while frontier:
        here = frontier.pop()
        for source, target in edges:
            if source == here and target not in reachable:
                reachable.add(target)
                frontier.add(target)
    # Then every state can be reached from a new job, and every open state can reach a final one
    assert reachable == set(Status)
    for state in OPEN:
        assert any(source == state and target in FINAL for source, target in edges), state


def test_a_final_job_changes_only_through_an_operator_reopen_or_a_late_billed_result():
    leaving_final = {name for name, t in TRANSITIONS.items() if t.target and set(t.sources) & set(FINAL)}
    assert leaving_final == {"reopen", "complete_late"}
