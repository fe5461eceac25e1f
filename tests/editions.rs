//! The two editions of every sheet, English (README.md) and French
//! (LISEZMOI.md), kept in step: the same sections, the same commands in
//! the same order, the same number of observations, questions and answers,
//! and no broken link in either. A change made to one edition and not to
//! the other fails here.
//!
//! What "the same" means, so that a translation stays free where it should:
//! - headings: the same levels in the same order (their words translated);
//! - command blocks (fenced as ```sh): the same lines, once comments are
//!   set aside (a `#` at the start of a line, or after two spaces, begins
//!   one); other fenced blocks (diagrams, output) only as many;
//! - in each section, as many numbered items (`1. `) at the left margin;
//! - the last section is the answers (`## Answers`, `## Réponses`);
//! - every relative link leads to a file that exists; each French edition
//!   links to the glossary (docs/glossaire.md).

use std::fs;
use std::path::{Path, PathBuf};

/// One sheet, reduced to what both editions must share.
#[derive(Debug, PartialEq)]
struct Shape {
    /// The heading levels, in order (2 for ##, 3 for ###).
    headings: Vec<usize>,
    /// The command blocks' lines, comments set aside.
    commands: Vec<Vec<String>>,
    /// How many fenced blocks of any kind.
    blocks: usize,
    /// Per section (## or ###, in order), its numbered items.
    numbered: Vec<usize>,
}

fn without_comment(line: &str) -> String {
    let line = line.trim_end();
    if line.trim_start().starts_with("# ") || line.trim_start() == "#" {
        return String::new();
    }
    match line.find("  #") {
        Some(i) => line[..i].trim_end().to_string(),
        None => line.to_string(),
    }
}

fn shape(text: &str) -> Shape {
    let mut shape = Shape {
        headings: Vec::new(),
        commands: Vec::new(),
        blocks: 0,
        numbered: vec![0],
    };
    let mut fence: Option<(String, bool)> = None; // (marker, a command block)
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some((marker, is_sh)) = &fence {
            if trimmed.starts_with(marker.as_str()) && trimmed.trim_end() == marker {
                fence = None;
            } else if *is_sh {
                let kept = without_comment(trimmed);
                if !kept.is_empty() {
                    shape.commands.last_mut().expect("a block").push(kept);
                }
            }
            continue;
        }
        if trimmed.starts_with("```") {
            let marker: String = trimmed.chars().take_while(|&c| c == '`').collect();
            let info = trimmed[marker.len()..].trim();
            let is_sh = info == "sh";
            if is_sh {
                shape.commands.push(Vec::new());
            }
            shape.blocks += 1;
            fence = Some((marker, is_sh));
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (2..=3).contains(&hashes) && line[hashes..].starts_with(' ') {
            shape.headings.push(hashes);
            shape.numbered.push(0);
            continue;
        }
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && line[digits..].starts_with(". ") {
            *shape.numbered.last_mut().expect("a section") += 1;
        }
    }
    shape
}

/// The relative links of a markdown text: `](target)`, without the anchor.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let path = target.split('#').next().unwrap_or("");
        if !path.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            found.push(path.to_string());
        }
    }
    found
}

fn last_heading(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| l.starts_with("## "))
}

/// Every sheet: the top README and each lab's.
fn sheets(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut labs: Vec<PathBuf> = fs::read_dir(root.join("labs"))
        .expect("labs/")
        .map(|e| e.expect("a lab").path())
        .filter(|p| p.join("README.md").is_file())
        .collect();
    labs.sort();
    dirs.extend(labs);
    dirs
}

#[test]
fn the_english_and_french_editions_of_each_sheet_are_in_step() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for dir in sheets(root) {
        let english = dir.join("README.md");
        let french = dir.join("LISEZMOI.md");
        let Ok(fr) = fs::read_to_string(&french) else {
            problems.push(format!("{} has no French edition", english.display()));
            continue;
        };
        let en = fs::read_to_string(&english).expect("README.md");
        let (a, b) = (shape(&en), shape(&fr));
        let name = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        if a.headings != b.headings {
            problems.push(format!(
                "{name}: the headings differ: {:?} against {:?}",
                a.headings, b.headings
            ));
        }
        if a.commands != b.commands {
            let first = a
                .commands
                .iter()
                .zip(&b.commands)
                .position(|(x, y)| x != y)
                .unwrap_or(a.commands.len().min(b.commands.len()));
            problems.push(format!(
                "{name}: the command blocks differ ({} against {}), from block {}: {:?} against {:?}",
                a.commands.len(),
                b.commands.len(),
                first + 1,
                a.commands.get(first),
                b.commands.get(first)
            ));
        }
        if a.blocks != b.blocks {
            problems.push(format!(
                "{name}: {} fenced blocks against {}",
                a.blocks, b.blocks
            ));
        }
        if a.numbered != b.numbered {
            problems.push(format!(
                "{name}: the numbered items per section differ: {:?} against {:?}",
                a.numbered, b.numbered
            ));
        }
        if dir != root {
            if last_heading(&en) != Some("## Answers") {
                problems.push(format!("{name}: README.md does not end with ## Answers"));
            }
            if last_heading(&fr) != Some("## Réponses") {
                problems.push(format!("{name}: LISEZMOI.md does not end with ## Réponses"));
            }
        }
        if !links(&fr).iter().any(|l| l.ends_with("docs/glossaire.md")) {
            problems.push(format!("{name}: LISEZMOI.md does not link to the glossary"));
        }
        for (file, text) in [(&english, &en), (&french, &fr)] {
            for link in links(text) {
                if !dir.join(&link).exists() {
                    problems.push(format!("{}: broken link {link}", file.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_shape_of_a_sheet_sets_comments_and_words_aside() {
    let en = "## Run\n\n1. **Start.**\n   ```sh\n   ./server   # terminal 1\n   ```\n2. Look.\n\n## Answers\n\n1. Yes.\n2. No.\n";
    let fr = "## Lancer\n\n1. **Démarrer.**\n   ```sh\n   ./server   # terminal 1 : en écoute\n   ```\n2. Regardez.\n\n## Réponses\n\n1. Oui.\n2. Non.\n";
    assert_eq!(shape(en), shape(fr));
    let other = fr.replace("./server ", "./server 4243 ");
    assert_ne!(shape(en), shape(&other));
    let fewer = fr.replace("2. Non.\n", "");
    assert_ne!(shape(en), shape(&fewer));
    assert_eq!(
        links("see [a](../x.md#top) and [b](https://e.org) [c](#here)"),
        ["../x.md"]
    );
}
