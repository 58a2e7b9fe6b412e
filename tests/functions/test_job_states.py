"""The job's states and transitions: one table, and the README draws it."""

from __future__ import annotations

from pathlib import Path

from cutouts.job_states import FINAL, NEW, OPEN, TRANSITIONS, Status, mermaid

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_state_diagram_is_the_one_the_table_draws():
    # Given the README's job-states diagram and the table the store applies
    readme = README.read_text()
    # Then the README holds exactly the diagram drawn from the table
    assert f"```mermaid\n{mermaid()}\n```" in readme


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
