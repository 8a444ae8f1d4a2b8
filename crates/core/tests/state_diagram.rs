//! ARCHITECTURE.md's state diagram is the transition table, edge for edge:
//! a row added to or removed from `state::TRANSITIONS` without the diagram
//! (or the other way round) fails here.

use std::collections::BTreeSet;

use gild_core::state::{BakeState, Lanes, TRANSITIONS};

/// `from --> to: Step` lines of the mermaid block under "The bake state
/// machine" (the `[*]` start and end markers are not transitions).
fn diagram_edges() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ARCHITECTURE.md");
    let text = std::fs::read_to_string(path).expect("ARCHITECTURE.md");
    let section = text
        .split("## The bake state machine")
        .nth(1)
        .expect("ARCHITECTURE.md has a section \"The bake state machine\"");
    let block = section
        .split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block in that section");
    block
        .lines()
        .map(str::trim)
        .filter(|line| line.contains("-->") && !line.contains("[*]"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_architecture_diagram_is_the_transition_table() {
    let table: BTreeSet<String> = TRANSITIONS
        .iter()
        .map(|(from, step, to, lanes)| match lanes {
            Lanes::Both => format!("{from} --> {to}: {step:?}"),
            Lanes::Only(lane) => format!("{from} --> {to}: {step:?} ({lane} only)"),
        })
        .collect();
    let diagram = diagram_edges();
    let missing: Vec<_> = table.difference(&diagram).collect();
    let extra: Vec<_> = diagram.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "rows missing from the diagram: {missing:?}; edges not in the table: {extra:?}"
    );
}

#[test]
fn every_state_is_in_the_diagram() {
    let diagram = diagram_edges().into_iter().collect::<Vec<_>>().join("\n");
    for state in BakeState::ALL {
        assert!(
            diagram.contains(state.as_str()),
            "{state} is not in the diagram"
        );
    }
}
