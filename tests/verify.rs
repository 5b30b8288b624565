//! Verify before deploy: the revision about to be registered and the
//! service it goes to are checked in the plan, printed as a tree of OK /
//! NG / SKIP; an NG is a bad input (exit 2) with no call that changes
//! anything, and `verify: false` turns the checks off.

use crate::rollout::{roll_out, setup_on};
use crate::util::{Emulator, RunResult};

fn changing_calls(emulator: &Emulator, from: usize) -> Vec<String> {
    emulator
        .requests()
        .split_off(from)
        .into_iter()
        .map(|(_, action)| action)
        .filter(|a| ["RegisterTaskDefinition", "UpdateService", "RunTask"].contains(&a.as_str()))
        .collect()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

#[test]
fn an_invalid_fargate_size_is_refused_before_anything_is_registered() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    document["memory"] = serde_json::json!("4096");
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let set_up = emulator.requests().len();
    let run = roll_out(&s, "abc1234").run_against(&emulator);
    run.assert_code(2);
    assert!(
        run.stdout
            .contains("NG   Fargate task size (cpu, memory): cpu 256 with memory 4096 MiB"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("OK   an essential container"),
        "{}",
        run.stdout
    );
    let errors = errors(&run);
    assert!(errors.contains("input `task-definition`"), "{errors}");
    assert!(errors.contains("use memory 512 to 2048 MiB"), "{errors}");
    assert!(changing_calls(&emulator, set_up).is_empty());

    // verify: false leaves the judgement to ECS.
    let unchecked = roll_out(&s, "abc1234")
        .input("verify", "false")
        .run_against(&emulator);
    assert!(
        !unchecked.stdout.contains("Fargate task size"),
        "{}",
        unchecked.stdout
    );
    assert_ne!(unchecked.code, 2, "{}", unchecked.stdout);
}

#[test]
fn a_port_the_load_balancer_needs_but_the_revision_drops_is_refused() {
    let s = crate::strategies::strategy_service("BLUE_GREEN", 0, 0.3);
    s.ws.write(
        "td.json",
        &serde_json::json!({
            "family": s.family(),
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [{
                "name": "app",
                "image": "placeholder",
                "portMappings": [{"containerPort": 8080}]
            }]
        })
        .to_string(),
    );
    let set_up = s.emulator.requests().len();
    let run = crate::strategies::roll_out(&s, "v2")
        .input("task-definition-family", "")
        .input("task-definition", "td.json")
        .run_against(&s.emulator);
    run.assert_code(2);
    let errors = errors(&run);
    assert!(errors.contains("input `service`"), "{errors}");
    assert!(errors.contains("maps no containerPort 80"), "{errors}");
    assert!(run.stdout.contains("takes the tasks"), "{}", run.stdout);
    assert!(changing_calls(&s.emulator, set_up).is_empty());
}
