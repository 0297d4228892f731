//! Unit tests of [`crate::typecheck`]: located type and document errors.
use verdict_core::receipt::Salt;

use crate::compile;
use crate::error::PolicyErrorKind as K;

const HEAD: &str = "name = \"p\"\nversion = \"1\"\n[lists]\nl = [\"x\"]\n[variables]\nn = { type = \"int\", min = 0, max = 9 }\nd = { type = \"enum\", values = [\"a\", \"b\"] }\ns = { type = \"string\" }\nb = { type = \"bool\" }\nt = { type = \"token\" }\n";

fn rule(require: &str) -> String {
    format!("{HEAD}[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = '{require}'\neffect = \"deny\"\n")
}

fn err(src: &str) -> crate::PolicyError {
    compile(src, Salt([0; 32])).unwrap_err()
}

#[test]
fn an_error_offset_inside_a_multibyte_character_keeps_its_line() {
    // Found by reading the `expr` fuzz target: the offset mapped through the escape `\"` landed
    // inside `é`, and the error was reported at 1:1.
    let src = "name = \"p\"\nversion = \"1\"\n[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = \"\\\"é\"\neffect = \"deny\"\n";
    assert!(src.contains("require = \"\\\"é\""), "{src}");
    let e = err(src);
    assert_eq!(e.line(), 6, "{}", e.with_file("p.toml"));
}

#[test]
fn expression_errors_are_located_in_the_file() {
    let e = err(&rule("n <= 5 and nope == 1"));
    assert_eq!(
        e.kind(),
        &K::UnknownVariable {
            name: "nope".into()
        }
    );
    assert_eq!((e.line(), e.column()), (14, 23));
    let shown = e.with_file("p.toml").to_string();
    assert!(
        shown.starts_with("p.toml:14:23: error: unknown variable `nope`"),
        "{shown}"
    );
    assert!(shown.ends_with("\n   |                       ^"), "{shown}");

    let e = err(&rule("n <= "));
    assert!(matches!(e.kind(), K::Syntax { .. }));
    assert_eq!((e.line(), e.column()), (14, 17));
}

#[test]
fn type_errors() {
    type Check = fn(&K) -> bool;
    let cases: &[(&str, Check)] = &[
        ("d == 3", |k| matches!(k, K::Type { .. })),
        (r#"d == "c""#, |k| matches!(k, K::NotInEnum { .. })),
        (r#"d in ["a", "z"]"#, |k| matches!(k, K::NotInEnum { .. })),
        ("n == true", |k| matches!(k, K::Type { .. })),
        (r#"s < "x""#, |k| matches!(k, K::Type { .. })),
        ("b < 1", |k| matches!(k, K::Type { .. })),
        (r#"t == "x""#, |k| matches!(k, K::Type { .. })),
        ("n", |k| matches!(k, K::Type { .. })),
        ("s in nolist", |k| matches!(k, K::UnknownList { .. })),
        ("n in l", |k| matches!(k, K::Type { .. })),
        ("1 == 1", |k| matches!(k, K::Type { .. })),
        ("present(zz)", |k| matches!(k, K::UnknownVariable { .. })),
        ("approvals", |k| matches!(k, K::Type { .. })),
    ];
    for (src, ok) in cases {
        let e = err(&rule(src));
        assert!(ok(e.kind()), "{src}: {e}");
        assert_eq!(e.line(), 14, "{src}");
    }
    // Well-typed ones compile.
    for src in [
        "approvals >= 2",
        r#"d != "b" and s == "q" and b == false and present(t) and s in l and s == s"#,
        "b => n > 3 or not present(n)",
    ] {
        compile(&rule(src), Salt([0; 32])).unwrap();
    }
}

#[test]
fn document_errors() {
    let dup = format!(
        "{}[[rules]]\nid = \"r\"\ntext = \"t\"\nrequire = 'b'\neffect = \"deny\"\n",
        rule("b")
    );
    assert!(matches!(err(&dup).kind(), K::DuplicateRule { .. }));
    assert_eq!(err(&dup).line(), 17);
    assert!(matches!(
        err(&rule("b").replace("\"deny\"", "\"maybe\"")).kind(),
        K::InvalidField {
            field: "effect",
            ..
        }
    ));
    assert!(matches!(
        err(&rule("b").replace("name = \"p\"", "name = \"P!\"")).kind(),
        K::InvalidField { field: "name", .. }
    ));
    let e = err(&rule("b").replace("id = \"r\"", "id = \"r\"\nbogus = 1"));
    assert!(matches!(e.kind(), K::Toml { .. }));
    assert_eq!(e.line(), 13);
    let e = err(&rule("b").replace("type = \"bool\"", "type = \"float\""));
    assert!(matches!(e.kind(), K::InvalidField { .. }));
    assert_eq!(e.line(), 9);
    assert!(matches!(
        err(&rule("b").replace("min = 0, max = 9", "min = 10, max = 9")).kind(),
        K::InvalidField { .. }
    ));
    assert!(matches!(
        err(&rule("b").replace("values = [\"a\", \"b\"]", "values = [\"a\", \"a\"]")).kind(),
        K::InvalidField { .. }
    ));
    assert!(matches!(
        err(&rule("b").replace(
            "s = { type = \"string\" }",
            "approvals = { type = \"int\" }"
        ))
        .kind(),
        K::InvalidField { .. }
    ));
    assert!(matches!(
        err(&rule("b").replace(
            "s = { type = \"string\" }",
            "s = { type = \"string\", list = \"zz\" }"
        ))
        .kind(),
        K::InvalidField { .. }
    ));
    assert!(matches!(
        err("name = \"p\"\nversion = \"1\"\n[[approvers]]\nname = \"a\"\nkey = \"garbage\"\n")
            .kind(),
        K::ApproverKey { .. }
    ));
    let big = format!("{}#{}", HEAD, "x".repeat(crate::parse::MAX_POLICY_BYTES));
    assert!(matches!(err(&big).kind(), K::TooLarge { .. }));
    let many: String = (0..1001)
        .map(|i| format!("v{i} = {{ type = \"bool\" }}\n"))
        .collect();
    assert!(matches!(
        err(&format!(
            "name = \"p\"\nversion = \"1\"\n[variables]\n{many}"
        ))
        .kind(),
        K::TooMany {
            what: "variables",
            ..
        }
    ));
    let deep = rule(&format!("{}b{}", "(".repeat(200), ")".repeat(200)));
    assert!(matches!(err(&deep).kind(), K::TooDeep { .. }));
    assert!(matches!(err("not toml [").kind(), K::Toml { .. }));
}

fn approvers(entries: &[(&str, &verdict_core::note::Verifier)]) -> String {
    let mut s = String::from("name = \"p\"\nversion = \"1\"\n");
    for (name, key) in entries {
        s.push_str(&format!(
            "[[approvers]]\nname = \"{name}\"\nkey = \"{key}\"\n"
        ));
    }
    s
}

fn signer(name: &str, seed: u8) -> verdict_core::note::Signer {
    verdict_core::note::Signer::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        .unwrap()
}

#[test]
fn approver_names_match_their_keys_and_are_unique() {
    let alice = signer("alice", 1).verifier();
    let bob = signer("bob", 2).verifier();
    let ok = compile(
        &approvers(&[("alice", &alice), ("bob", &bob)]),
        Salt([0; 32]),
    )
    .unwrap();
    // A policy built in code gets the same checks.
    let mut renamed = ok.ast().clone();
    renamed.approvers[1].name = "carol".into();
    assert!(matches!(
        crate::CompiledPolicy::from_policy(renamed, Salt([0; 32])),
        Err(K::ApproverNameMismatch { .. })
    ));

    // Name and key name disagree: located at the name, inside the quotes.
    let e = err(&approvers(&[("alice", &alice), ("carol", &bob)]));
    assert_eq!(
        e.kind(),
        &K::ApproverNameMismatch {
            name: "carol".into(),
            key_name: "bob".into()
        }
    );
    assert_eq!((e.line(), e.column()), (7, 9));
    assert!(e
        .with_file("p.toml")
        .to_string()
        .starts_with("p.toml:7:9: error: approver name `carol` does not match the name `bob`"));

    // The same key twice, and two keys under one name.
    let e = err(&approvers(&[("alice", &alice), ("alice", &alice)]));
    assert!(matches!(e.kind(), K::DuplicateApprover { .. }));
    let alice2 = signer("alice", 3).verifier();
    let e = err(&approvers(&[("alice", &alice), ("alice", &alice2)]));
    assert_eq!(
        e.kind(),
        &K::DuplicateApproverName {
            name: "alice".into()
        }
    );
    assert_eq!((e.line(), e.column()), (7, 9));

    // A name that is another approver's key id would make an approval ambiguous.
    let id = alice.key_id().to_string();
    let hex_named = signer(&id, 4).verifier();
    let e = err(&approvers(&[("alice", &alice), (&id, &hex_named)]));
    assert_eq!(e.kind(), &K::AmbiguousApproverName { name: id.clone() });
    assert_eq!((e.line(), e.column()), (7, 9));
}
