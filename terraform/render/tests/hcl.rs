//! Every `.tf` file under terraform/, parsed with hcl-rs: every variable is typed and
//! described and every output described; every IAM policy document has no wildcard
//! action and no `*` resource except for actions AWS cannot scope; every policy goes
//! through a document (so nothing escapes the check); and each module's README is the
//! table of its inputs and outputs (`SCALE0_BLESS=1` rewrites them).

mod support;

use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if name != ".terraform" && name != "render" {
                tf_files(&path, out);
            }
        } else if name.ends_with(".tf") {
            out.push(path);
        }
    }
}

fn all() -> Vec<(PathBuf, Body)> {
    let mut files = Vec::new();
    tf_files(&support::terraform_dir(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let body: Body = hcl::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: does not parse: {e}", p.display()));
            (p, body)
        })
        .collect()
}

fn label(b: &Block, i: usize) -> &str {
    b.labels().get(i).map_or("", |l| l.as_str())
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn hcl_text(e: &Expression) -> String {
    hcl::format::to_string(e).unwrap()
}

/// The string literals of an expression (template parts included), in order.
fn literals(e: &Expression) -> Vec<String> {
    let text = hcl_text(e);
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

#[test]
fn every_file_parses_and_every_variable_and_output_is_documented() {
    let files = all();
    assert!(files.len() >= 40, "only {} .tf files", files.len());
    let mut faults = Vec::new();
    for (path, body) in &files {
        for b in body.blocks() {
            let what = format!("{}: {} \"{}\"", path.display(), b.identifier(), label(b, 0));
            match b.identifier() {
                "variable" => {
                    for key in ["type", "description"] {
                        if attr(b.body(), key).is_none() {
                            faults.push(format!("{what} has no {key}"));
                        }
                    }
                }
                "output" if attr(b.body(), "description").is_none() => {
                    faults.push(format!("{what} has no description"))
                }
                _ => {}
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

/// Actions without resource-level permissions (the Service Authorization Reference
/// lists no resource type for them): `*` is their only resource.
const UNSCOPABLE: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ecr:GetAuthorizationToken",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
];

/// The statements of a policy document, `dynamic "statement"` contents included.
fn statements(doc: &Body) -> Vec<&Body> {
    doc.blocks()
        .filter_map(|b| match (b.identifier(), label(b, 0)) {
            ("statement", _) => Some(b.body()),
            ("dynamic", "statement") => b
                .body()
                .blocks()
                .find(|c| c.identifier() == "content")
                .map(|c| c.body()),
            _ => None,
        })
        .collect()
}

#[test]
fn iam_documents_have_no_wildcard_action_and_scoped_resources() {
    let mut faults = Vec::new();
    let mut documents = 0;
    for (path, body) in all() {
        for b in body.blocks() {
            let name = format!("{}: {} \"{}\"", path.display(), label(b, 0), label(b, 1));
            // Policies are written only as documents, so the check below sees them all.
            if b.identifier() == "resource" {
                for key in ["policy", "assume_role_policy"] {
                    if let Some(e) = attr(b.body(), key)
                        && !hcl_text(e).starts_with("data.aws_iam_policy_document.")
                    {
                        faults.push(format!("{name}.{key} is not a policy document"));
                    }
                }
            }
            if b.identifier() != "data" || label(b, 0) != "aws_iam_policy_document" {
                continue;
            }
            documents += 1;
            // In a key policy `*` is the key the policy is attached to.
            let key_policy = label(b, 1).ends_with("key_policy");
            for (i, st) in statements(b.body()).into_iter().enumerate() {
                let at = format!("{name} statement {i}");
                if attr(st, "not_actions").is_some() || attr(st, "not_resources").is_some() {
                    faults.push(format!(
                        "{at}: not_actions/not_resources grant by exclusion"
                    ));
                }
                let actions = attr(st, "actions").map(literals).unwrap_or_default();
                if actions.is_empty() {
                    faults.push(format!("{at}: no actions"));
                }
                for a in actions.iter().filter(|a| a.contains('*')) {
                    faults.push(format!("{at}: wildcard action `{a}`"));
                }
                let Some(resources) = attr(st, "resources") else {
                    let assume = actions.iter().all(|a| a == "sts:AssumeRole");
                    if !assume || !st.blocks().any(|c| c.identifier() == "principals") {
                        faults.push(format!("{at}: no resources"));
                    }
                    continue;
                };
                if literals(resources).iter().any(|r| r == "*") && !key_policy {
                    for a in actions.iter().filter(|a| !UNSCOPABLE.contains(&a.as_str())) {
                        faults.push(format!(
                            "{at}: `{a}` on resource `*`, but the action can be scoped"
                        ));
                    }
                }
            }
        }
    }
    assert!(documents >= 9, "only {documents} policy documents found");
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}

/// `map(object({…}))` for long types: the README says the shape, variables.tf the rest.
fn short(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find('{') {
        Some(open) if flat.len() > 40 => {
            let close = flat.rfind('}').unwrap();
            format!("{}…{}", &flat[..=open], &flat[close..])
        }
        _ => flat,
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The README of one module: its leading comment, then its inputs and outputs.
fn module_readme(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    let about: Vec<&str> = main
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').strip_prefix(' ').unwrap_or(""))
        .collect();
    let mut out = format!(
        "# Module `{name}`\n\n<!-- Written by `SCALE0_BLESS=1 cargo test -p scale0-terraform --test hcl` from the module's .tf files; a test fails when they differ. -->\n\n{}\n\n## Inputs\n\n| name | type | default | description |\n| --- | --- | --- | --- |\n",
        about.join("\n").trim()
    );
    let parse = |file: &str| -> Body {
        hcl::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
    };
    for b in parse("variables.tf")
        .blocks()
        .filter(|b| b.identifier() == "variable")
    {
        let body = b.body();
        let default = match attr(body, "default") {
            None => "required".to_string(),
            Some(e) => format!("`{}`", cell(&short(&hcl_text(e)))),
        };
        let sensitive = attr(body, "sensitive").is_some_and(|e| hcl_text(e) == "true");
        out += &format!(
            "| `{}` | `{}` | {default} | {}{} |\n",
            label(b, 0),
            cell(&short(&hcl_text(attr(body, "type").unwrap()))),
            cell(&literals(attr(body, "description").unwrap()).concat()),
            if sensitive { " Sensitive." } else { "" }
        );
    }
    out += "\n## Outputs\n\n| name | description |\n| --- | --- |\n";
    for b in parse("outputs.tf")
        .blocks()
        .filter(|b| b.identifier() == "output")
    {
        out += &format!(
            "| `{}` | {} |\n",
            label(b, 0),
            cell(&literals(attr(b.body(), "description").unwrap()).concat())
        );
    }
    out
}

#[test]
fn module_readmes_are_their_inputs_and_outputs() {
    let modules = support::terraform_dir().join("modules");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&modules)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut stale = Vec::new();
    for dir in dirs {
        let want = module_readme(&dir);
        let path = dir.join("README.md");
        if std::env::var_os("SCALE0_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (run `SCALE0_BLESS=1 cargo test -p scale0-terraform --test hcl`): {}",
        stale.join(", ")
    );
}
