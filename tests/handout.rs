//! `make handout LANG=rust|c DEST=dir` (tools/handout): the course as
//! students get it, a git repository of one commit where the programs of
//! LANG that have a starter are their starters, and nothing gives their
//! answers away (no patches, no seeded bugs, no tools/starter). Checked on
//! the tree, without building the hand-out's Rust (a minute); its C, which
//! must build with the starters in the labs' folders, is cheap to build.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{TempDir, run};

fn course() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, recursively (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// labs/LAB/starter/[stepN/]PATH -> (labs/LAB/PATH, N; 0 without a step).
fn reference_of(starter: &Path) -> (PathBuf, u32) {
    let text = starter.to_string_lossy();
    let (lab, rest) = text.split_once("/starter/").expect("a starter path");
    match rest.split_once('/') {
        Some((step, path)) if step.starts_with("step") => (
            PathBuf::from(format!("{lab}/{path}")),
            step[4..].parse().expect("stepN"),
        ),
        _ => (PathBuf::from(format!("{lab}/{rest}")), 0),
    }
}

/// Makes the hand-out of `lang` and checks its tree; returns it.
fn handout(lang: &str) -> TempDir {
    let dest = TempDir::new(&format!("handout-{lang}"));
    let made = run(
        "bash",
        &[
            &course().join("tools/handout").to_string_lossy(),
            lang,
            &dest.path.to_string_lossy(),
        ],
        b"",
    );
    assert_eq!(made.code(), Some(0), "{}", made.stderr);

    // A repository of its own, one commit, everything committed.
    let git = |args: &[&str]| {
        let mut all = vec!["-C", dest.path.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        let out = run("git", &all, b"");
        assert_eq!(out.code(), Some(0), "git {args:?}: {}", out.stderr);
        out.stdout_text()
    };
    assert_eq!(git(&["rev-list", "--count", "HEAD"]).trim(), "1");
    assert_eq!(git(&["status", "--porcelain"]), "");

    // Nothing that holds the answers, nothing only the course's developers use.
    for gone in [
        "tools/starter",
        "tools/check-proof",
        "tools/handout",
        "tests/starters.rs",
        "tests/handout.rs",
        ".ci",
    ] {
        assert!(!dest.join(gone).exists(), "{gone} is in the hand-out");
    }
    for file in files_under(&dest.join("labs")) {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        assert!(
            !name.ends_with(".patch") && name != "seeded-bugs",
            "{} is in the hand-out",
            file.display()
        );
    }
    // The sheets ask; their answers are the teacher's.
    for (sheet, heading) in [
        ("labs/02-fork/README.md", "## Answers\n"),
        ("labs/02-fork/LISEZMOI.md", "## Réponses\n"),
    ] {
        let text = fs::read_to_string(dest.join(sheet)).expect("a sheet");
        let course_text = fs::read_to_string(course().join(sheet)).expect("the sheet");
        let at = text.find(heading).expect("the answers' heading");
        assert!(text.len() - at < 200, "{sheet} keeps its answers");
        assert!(course_text.len() - course_text.find(heading).expect("answers") > 1000);
    }
    let mk = fs::read_to_string(dest.join("handout.mk")).expect("handout.mk");
    assert!(mk.contains(&format!("HANDOUT_LANG := {lang}\n")), "{mk}");
    assert!(dest.join("HANDOUT.md").exists());

    // Each reference of LANG that a starter cuts is that starter (the first
    // step's); every other program is the course's, the other language's
    // references among them; the starters stay for make exercise.
    let ext = if lang == "rust" { "rs" } else { "c" };
    let mut cut: Vec<(PathBuf, u32, PathBuf)> = Vec::new();
    for starter in files_under(&course().join("labs")) {
        let relative = starter.strip_prefix(course()).expect("in the course");
        let patch = starter.with_extension(format!("{ext}.patch"));
        if relative.to_string_lossy().contains("/starter/")
            && starter.extension().is_some_and(|e| e == ext)
            && patch.exists()
        {
            let (reference, step) = reference_of(relative);
            cut.push((reference, step, relative.to_path_buf()));
        }
    }
    assert!(cut.len() >= 7, "only {} {lang} starters", cut.len());
    for (reference, step, starter) in &cut {
        let first = cut
            .iter()
            .filter(|(r, _, _)| r == reference)
            .all(|(_, s, _)| s >= step);
        let given = fs::read(dest.path.join(reference)).expect("the reference's place");
        if first {
            assert_eq!(
                given,
                fs::read(course().join(starter)).expect("the starter"),
                "{} is not its starter",
                reference.display()
            );
        }
        assert_ne!(
            given,
            fs::read(course().join(reference)).expect("the reference"),
            "{} is the answer",
            reference.display()
        );
        assert!(
            dest.path.join(starter).exists(),
            "{} missing",
            starter.display()
        );
    }
    let tracked = run(
        "git",
        &["-C", &course().to_string_lossy(), "ls-files", "labs"],
        b"",
    );
    assert_eq!(tracked.code(), Some(0), "{}", tracked.stderr);
    for relative in tracked.stdout_text().lines().map(Path::new) {
        let is_program = relative.extension().is_some_and(|e| e == "rs" || e == "c");
        let absent = !course().join(relative).exists(); // deleted, not yet committed
        if is_program && !absent && !cut.iter().any(|(r, _, _)| r == relative) {
            assert_eq!(
                fs::read(dest.path.join(relative)).ok(),
                fs::read(course().join(relative)).ok(),
                "{} differs from the course's",
                relative.display()
            );
        }
    }
    dest
}

#[test]
fn a_rust_handout_has_starters_for_the_rust_references() {
    let dest = handout("rust");
    // make test says it is not part of a hand-out and points to make check.
    let test = run(
        "make",
        &["-s", "-C", &dest.path.to_string_lossy(), "test"],
        b"",
    );
    assert_ne!(test.code(), Some(0));
    assert!(test.stderr.contains("make check"), "{}", test.stderr);
    // make knows what to build, without building it here.
    let plan = run("make", &["-n", "-C", &dest.path.to_string_lossy()], b"");
    assert_eq!(plan.code(), Some(0), "{}", plan.stderr);
}

#[test]
fn a_c_handout_builds_its_c_starters_with_warnings_as_errors() {
    let dest = handout("c");
    let build = run(
        "make",
        &["-s", "-j4", "-C", &dest.path.to_string_lossy(), "c"],
        b"",
    );
    assert_eq!(build.code(), Some(0), "{}", build.stderr);
    assert!(dest.join("labs/01-echo/server-c").exists());
}
