//! `terraform fmt -check` over terraform/, and `terraform validate` of both examples
//! (which call every module), where a terraform binary and the AWS provider are
//! available; otherwise each is skipped with the reason printed. The examples are
//! validated in a scratch copy, so no `.terraform` or lock file lands in the tree.

mod support;

#[test]
fn terraform_fmt_check() {
    let bin = match support::terraform() {
        Ok(bin) => bin,
        Err(reason) => return println!("skipped terraform fmt -check: {reason}"),
    };
    let dir = support::terraform_dir();
    let out = support::run(
        &bin,
        &support::scratch("fmt"),
        None,
        &[
            "fmt",
            "-check",
            "-recursive",
            "-diff",
            "-no-color",
            dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "terraform fmt -check: run `terraform fmt -recursive terraform`:\n{}",
        support::text(&out)
    );
}

#[test]
fn terraform_validate_examples() {
    let bin = match support::terraform() {
        Ok(bin) => bin,
        Err(reason) => return println!("skipped terraform validate: {reason}"),
    };
    let mirror = match support::provider_mirror() {
        Ok(mirror) => mirror,
        Err(reason) => return println!("skipped terraform validate: {reason}"),
    };
    let copy = support::scratch("validate");
    support::copy_tree(&support::terraform_dir(), &copy);
    for example in ["complete", "minimal"] {
        let dir = copy.join("examples").join(example);
        for args in [
            &["init", "-backend=false", "-input=false", "-no-color"][..],
            &["validate", "-no-color"][..],
        ] {
            let out = support::run(&bin, &dir, Some(&mirror), args);
            assert!(
                out.status.success(),
                "examples/{example}: terraform {}:\n{}",
                args[0],
                support::text(&out)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&copy);
}
