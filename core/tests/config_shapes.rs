//! Configurations fuzzed by shape: start from valid configurations — the shipped
//! example, and the normalized form of one that sets every field (what `config check`
//! prints) — and break them one field at a time, then several at once:
//!
//! - every field (every node of the tree, tables and arrays too) is removed, given
//!   each other type, given values out of range (0, −1, 2³², i64::MAX, NaN, ±∞,
//!   1e308), given strings that are empty, huge, without a unit (`"90"`), with an
//!   unknown unit (`"5y"`), or not a zone or expression, and given a null (JSON);
//! - every table gets an unknown key;
//! - arrays are emptied and their first element doubled.
//!
//! Each input must load or be refused with an error that names the field (its path,
//! a path inside it, or — for a rule across fields such as `boot_time` against
//! `policy.boot_timeout` — its key in the message), and never panic. Several type
//! faults at once must all be named in one load. Loading is pure, so no state can
//! change; the seeds are checked to be unchanged. Each target prints how many inputs
//! it tried (`cargo test -p scale0-core --test config_shapes -- --nocapture`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use scale0_core::config::{Config, LoadError};
use scale0_core::document::Node;

const EXAMPLE: &str = include_str!("../../examples/local.toml");

/// Sets what the normalized form leaves out (fields that default to none).
const EVERY_OPTIONAL: &str = r#"
[[deployments]]
name = "full"
[[deployments.pools]]
name = "gpu"
instance_type = "g5.xlarge"
max_instances = 4
slots = 2
price_per_hour_usd = 1.5
boot_time = "90s"
asg_name = "scale0-full-gpu"
instance_args = ["--fail-rate", "0.1"]
[deployments.policy]
cold_start_budget = 0.01
[[deployments.schedules]]
name = "window"
expression = "rate(5 minutes)"
time_zone = "Asia/Kolkata"
min_instances = 1
max_instances = 3
start = "2026-01-01T00:00:00Z"
end = "2027-01-01T00:00:00Z"
[[deployments.schedules]]
name = "launch"
expression = "at(2030-06-01T09:00:00)"
max_instances = 4
[provider]
kind = "aws-asg"
[provider.local]
state_dir = "/tmp/scale0-shapes"
[provider.aws_asg]
region = "eu-west-1"
"#;

fn seeds() -> Vec<(&'static str, Node)> {
    let normalize = |text: &str| {
        let config = Config::load(text).unwrap_or_else(|e| panic!("seed: {e}"));
        Node::from_toml(&toml::to_string(&config).unwrap()).unwrap()
    };
    vec![
        ("examples/local.toml", Node::from_toml(EXAMPLE).unwrap()),
        ("normalized example", normalize(EXAMPLE)),
        ("every optional field", normalize(EVERY_OPTIONAL)),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every node below the root, by its steps from the root.
fn paths(node: &Node, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match node {
        Node::Table(entries) => {
            for (k, v) in entries {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                paths(v, at, out);
                at.pop();
            }
        }
        Node::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(Step::Index(i));
                out.push(at.clone());
                paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(node: &'a mut Node, steps: &[Step]) -> Option<&'a mut Node> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(node);
    };
    let child = match (node, first) {
        (Node::Table(entries), Step::Key(k)) => {
            entries.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)
        }
        (Node::Array(items), Step::Index(i)) => items.get_mut(*i),
        _ => None,
    }?;
    get_mut(child, rest)
}

/// The README's path rule, derived here independently: keys joined by `.`, an array
/// element named by its `name` string when it has one, by its index otherwise.
fn display(root: &Node, steps: &[Step]) -> String {
    let mut out = String::new();
    let mut node = Some(root);
    for step in steps {
        let here = node;
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
                node = match here {
                    Some(Node::Table(entries)) => {
                        entries.iter().find(|(key, _)| key == k).map(|(_, v)| v)
                    }
                    _ => None,
                };
            }
            Step::Index(i) => {
                let element = match here {
                    Some(Node::Array(items)) => items.get(*i),
                    _ => None,
                };
                let name = match element {
                    Some(Node::Table(entries)) => {
                        entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
                            ("name", Node::Str(n)) => Some(n.clone()),
                            _ => None,
                        })
                    }
                    _ => None,
                };
                out.push_str(&format!("[{}]", name.unwrap_or_else(|| i.to_string())));
                node = element;
            }
        }
    }
    out
}

/// The key a path ends in (the array's key for an element).
fn leaf_key(steps: &[Step]) -> String {
    steps
        .iter()
        .rev()
        .find_map(|s| match s {
            Step::Key(k) => Some(k.clone()),
            Step::Index(_) => None,
        })
        .unwrap_or_default()
}

fn to_toml(node: &Node) -> Option<toml::Value> {
    Some(match node {
        Node::Null => return None,
        Node::Bool(b) => toml::Value::Boolean(*b),
        Node::Int(i) => toml::Value::Integer(i64::try_from(*i).ok()?),
        Node::Float(f) => toml::Value::Float(*f),
        Node::Str(s) => toml::Value::String(s.clone()),
        Node::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect::<Option<_>>()?),
        Node::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn to_json(node: &Node) -> Option<serde_json::Value> {
    Some(match node {
        Node::Null => serde_json::Value::Null,
        Node::Bool(b) => serde_json::Value::Bool(*b),
        Node::Int(i) => serde_json::Value::from(i64::try_from(*i).ok()?),
        Node::Float(f) => serde_json::Value::from(serde_json::Number::from_f64(*f)?),
        Node::Str(s) => serde_json::Value::String(s.clone()),
        Node::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect::<Option<_>>()?),
        Node::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| Some((k.clone(), to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The document as text: TOML, or JSON when TOML cannot say it (a null).
fn text(root: &Node) -> String {
    match to_toml(root) {
        Some(v) => toml::to_string(&v).expect("a TOML document"),
        None => serde_json::to_string(&to_json(root).expect("a JSON document")).unwrap(),
    }
}

fn replacements(node: &Node) -> Vec<Node> {
    let mut out = vec![
        Node::Str("x".into()),
        Node::Int(7),
        Node::Float(0.25),
        Node::Bool(true),
        Node::Array(vec![Node::Int(1)]),
        Node::Table(Vec::new()),
        Node::Null,
    ];
    out.retain(|r| std::mem::discriminant(r) != std::mem::discriminant(node));
    match node {
        Node::Int(_) => out.extend([0, -1, 1, 1 << 32, i64::MAX.into()].map(Node::Int)),
        Node::Float(_) => out.extend(
            [
                0.0,
                -1.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e308,
                1e-308,
            ]
            .map(Node::Float),
        ),
        Node::Str(_) => out.extend(
            [
                "",
                " ",
                "90",
                "5y",
                "-1s",
                "1.5s",
                "99999999999999999999s",
                "\u{0}",
                "ünïcødé 💥",
                "cron(",
                "rate(0 minutes)",
                "at(2026-02-30T00:00:00)",
                "Mars/Olympus_Mons",
            ]
            .map(|s| Node::Str(s.into()))
            .into_iter()
            .chain([Node::Str("a".repeat(10_000))]),
        ),
        Node::Array(items) => {
            out.push(Node::Array(Vec::new()));
            if let Some(first) = items.first() {
                let mut doubled = items.clone();
                doubled.push(first.clone());
                out.push(Node::Array(doubled));
            }
        }
        Node::Table(_) | Node::Bool(_) | Node::Null => {}
    }
    out
}

/// What one mutated document did.
enum Outcome {
    Loaded,
    Refused,
}

/// Load `root` and check the result names `steps` (in the mutated tree); panics of
/// the loader are caught and reported with the input.
fn check(root: &Node, steps: &[Step], what: &str) -> Result<Outcome, String> {
    let input = text(root);
    let field = display(root, steps);
    let key = leaf_key(steps);
    let loaded = catch_unwind(AssertUnwindSafe(|| Config::load(&input)))
        .map_err(|_| format!("panicked on {what} at {field}"))?;
    match loaded {
        Ok(_) => Ok(Outcome::Loaded),
        Err(LoadError::Parse(e)) => Err(format!(
            "{what} at {field}: a syntax error from valid syntax: {e}"
        )),
        Err(LoadError::Invalid(errors)) => {
            // The array an element is in names the element too (`alert_thresholds`
            // for `alert_thresholds[0]`); a rule across fields names the other field
            // and says this one's key (`deployment` for a budget's dangling reference).
            let array = match steps.last() {
                Some(Step::Index(_)) => Some(display(root, &steps[..steps.len() - 1])),
                _ => None,
            };
            let keys: Vec<&str> = steps
                .iter()
                .filter_map(|s| match s {
                    Step::Key(k) => Some(k.trim_end_matches('s')),
                    Step::Index(_) => None,
                })
                .collect();
            let named = errors.0.iter().any(|e| {
                e.field == field
                    || e.field.starts_with(&format!("{field}."))
                    || e.field.starts_with(&format!("{field}["))
                    || array.as_ref() == Some(&e.field)
                    || (!key.is_empty() && e.message.contains(&key))
                    || keys.iter().any(|k| !k.is_empty() && e.message.contains(k))
            });
            if named {
                Ok(Outcome::Refused)
            } else {
                Err(format!("{what} at {field}: no error names it:\n{errors}"))
            }
        }
    }
}

#[test]
fn every_field_of_a_valid_config_broken_one_at_a_time_is_named() {
    let (mut tried, mut loaded, mut refused) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (seed_name, seed) in seeds() {
        let pristine = seed.clone();
        let mut all = Vec::new();
        paths(&seed, &mut Vec::new(), &mut all);
        let mut record = |result: Result<Outcome, String>| {
            tried += 1;
            match result {
                Ok(Outcome::Loaded) => loaded += 1,
                Ok(Outcome::Refused) => refused += 1,
                Err(e) => failures.push(format!("{seed_name}: {e}")),
            }
        };
        for steps in &all {
            let node = get_mut(&mut seed.clone(), steps).unwrap().clone();
            for r in replacements(&node) {
                let mut m = seed.clone();
                *get_mut(&mut m, steps).unwrap() = r.clone();
                record(check(&m, steps, &format!("{r:?}")));
            }
            // Removed.
            let (parent, last) = steps.split_at(steps.len() - 1);
            let mut m = seed.clone();
            match (get_mut(&mut m, parent).unwrap(), &last[0]) {
                (Node::Table(entries), Step::Key(k)) => entries.retain(|(key, _)| key != k),
                (Node::Array(items), Step::Index(i)) => {
                    items.remove(*i);
                }
                _ => unreachable!(),
            }
            // A removed element's own path no longer exists: its array names it.
            let named = match last[0] {
                Step::Key(_) => steps.to_vec(),
                Step::Index(_) => parent.to_vec(),
            };
            record(check(&m, &named, "removed"));
            // An unknown key in a table.
            if let Node::Table(_) = node {
                let mut m = seed.clone();
                if let Some(Node::Table(entries)) = get_mut(&mut m, steps) {
                    entries.push(("bogus_key".into(), Node::Int(1)));
                }
                let mut at = steps.to_vec();
                at.push(Step::Key("bogus_key".into()));
                record(check(&m, &at, "unknown key"));
            }
        }
        assert_eq!(seed, pristine, "a seed changed");
    }
    eprintln!(
        "config shapes, one field at a time: {tried} inputs, {loaded} loaded, {refused} refused naming the field, {} failed",
        failures.len()
    );
    assert!(tried > 2_000, "only {tried} inputs");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A type swap for each of several distinct fields, none inside another.
fn several_faults() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (
        0usize..3,
        proptest::collection::vec((any::<usize>(), 0usize..6), 2..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn several_type_faults_are_all_named_in_one_load((seed_index, picks) in several_faults()) {
        let (_, seed) = seeds().swap_remove(seed_index);
        let mut all = Vec::new();
        paths(&seed, &mut Vec::new(), &mut all);
        // Keep leaves only, and fields far enough apart: none a prefix of another,
        // and never a `name` (which renames its element's path).
        let mut chosen: Vec<Vec<Step>> = Vec::new();
        for (pick, _) in &picks {
            let steps = &all[pick % all.len()];
            let leaf = !matches!(get_mut(&mut seed.clone(), steps), Some(Node::Table(_) | Node::Array(_)));
            let apart = chosen.iter().all(|c| !c.starts_with(steps) && !steps.starts_with(c));
            if leaf && apart && leaf_key(steps) != "name" && matches!(steps.last(), Some(Step::Key(_))) {
                chosen.push(steps.clone());
            }
        }
        let mut m = seed.clone();
        for (steps, (_, kind)) in chosen.iter().zip(&picks) {
            let node = get_mut(&mut m, steps).unwrap();
            let swaps: Vec<Node> = replacements(node)
                .into_iter()
                .filter(|r| std::mem::discriminant(r) != std::mem::discriminant(node))
                // A null is an absent Option in JSON, and an f64 takes an integer.
                .filter(|r| !matches!((&*node, r), (_, Node::Null) | (Node::Float(_), Node::Int(_))))
                .take(6)
                .collect();
            *node = swaps[kind % swaps.len()].clone();
        }
        let input = text(&m);
        let errors = match Config::load(&input) {
            Err(LoadError::Invalid(errors)) => errors.0,
            other => {
                // A string swapped in where a string enum or a path belongs may still be
                // refused above; only a load that succeeds with a type swapped is wrong.
                prop_assert!(chosen.is_empty(), "loaded with {} type faults: {other:?}", chosen.len());
                return Ok(());
            }
        };
        for steps in &chosen {
            let field = display(&m, steps);
            prop_assert!(
                errors.iter().any(|e| e.field == field),
                "{field} not named among:\n{}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            );
        }
    }
}
