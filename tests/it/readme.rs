//! The README's `sh` blocks follow the convention `.ci/readme` relies on (its header explains
//! it): `.ci/readme` runs them against a real server in CI; this checks, in a second, that a
//! block cannot pass there without checking anything.

use crate::common::repo::read;

/// The `sh` blocks, each as (README line, commands with continuation lines joined).
fn sh_blocks() -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    let mut pending = String::new();
    let mut in_other_fence = false;
    for (i, line) in read("README.md").lines().enumerate() {
        match &mut current {
            None if in_other_fence => in_other_fence = !line.starts_with("```"),
            None if line.trim_end() == "```sh" => current = Some((i + 1, Vec::new())),
            None if line.starts_with("```") => in_other_fence = true,
            None => {}
            Some(_) if line.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, commands)) => match line.strip_suffix('\\') {
                Some(part) => pending.push_str(part),
                None => {
                    pending.push_str(line);
                    commands.push(std::mem::take(&mut pending));
                }
            },
        }
    }
    assert!(
        current.is_none() && !in_other_fence,
        "an unterminated fence"
    );
    blocks
}

#[test]
fn the_readme_has_a_runnable_quick_start() {
    let blocks = sh_blocks();
    assert!(blocks.len() >= 10, "{} sh blocks", blocks.len());
    let all: Vec<&String> = blocks.iter().flat_map(|(_, c)| c).collect();
    let start = all
        .iter()
        .position(|c| c.contains("multiprovider serve &"))
        .expect("the quick start starts the server in the background");
    let build = all
        .iter()
        .position(|c| c.trim() == "cargo build")
        .expect("the quick start builds");
    assert!(build < start);
    assert!(
        all[start + 1].contains("/health/ready") && all[start + 1].contains("--retry"),
        "the quick start waits for readiness: {}",
        all[start + 1]
    );
    assert_eq!(
        all.iter().filter(|c| c.contains(" serve")).count(),
        1,
        "one server for the whole README (port 8080)"
    );
}

#[test]
fn every_request_checks_its_answer() {
    for (line, commands) in sh_blocks() {
        for command in commands {
            let command = command.split(" #").next().unwrap();
            let Some(curl) = command.trim_start().strip_prefix("curl ") else {
                continue;
            };
            let fails_on_error = curl.split_whitespace().take_while(|w| *w != "|").any(|w| {
                w == "--fail"
                    || w == "--fail-with-body"
                    || (w.starts_with('-') && !w.starts_with("--") && w.contains('f'))
            });
            assert!(
                fails_on_error || curl.contains("| grep"),
                "README.md block at line {line}: `curl {curl}` neither fails on an error status \
                 (-f, --fail-with-body) nor checks its answer (| grep …)"
            );
        }
    }
}

#[test]
fn the_blocks_need_nothing_outside_the_repository() {
    for (line, commands) in sh_blocks() {
        for command in commands {
            assert!(
                !command.contains("../"),
                "README.md block at line {line} reaches outside a fresh clone: {command}"
            );
        }
    }
}
