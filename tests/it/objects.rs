//! Views, triggers, routines and events: exported with a database
//! (`DB.*`), created on the target after the data, views in dependency
//! order, each under its own sql_mode; `--definer keep|strip|'u'@'h'`;
//! `--no-objects`; `--triggers` for tables named one by one.

use std::path::Path;

use myspool::load::{with_definer, DefinerPolicy};

use crate::common::*;

/// Three views over one another (named so that name order is the wrong
/// order), two triggers, a procedure, a function made under
/// PIPES_AS_CONCAT (`||` concatenates only under it) and an event.
const OBJECTS: &str = "
    CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(20));
    CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, t_id INT);
    INSERT INTO t SELECT seq, seq, 'source' FROM seq_1_to_100;
    INSERT INTO audit (t_id) VALUES (1), (2);
    CREATE VIEW z_base AS SELECT id, v FROM t WHERE v > 10;
    CREATE VIEW m_mid AS SELECT id, v * 2 AS v2 FROM z_base;
    CREATE VIEW a_top AS SELECT COUNT(*) AS n, SUM(v2) AS s FROM m_mid;
    CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.note = 'fired';
    CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (t_id) VALUES (NEW.id);
    CREATE PROCEDURE bump(IN d INT) BEGIN UPDATE t SET v = v + d; SELECT COUNT(*) FROM t; END;
    SET SESSION sql_mode = 'PIPES_AS_CONCAT,STRICT_TRANS_TABLES';
    CREATE FUNCTION greet(s VARCHAR(20)) RETURNS VARCHAR(40) DETERMINISTIC RETURN 'hi ' || s;
    SET SESSION sql_mode = DEFAULT;
    CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'
      DO DELETE FROM audit WHERE id < 0;";

/// (kind, name) of every object of [`OBJECTS`].
const NAMES: [(&str, &str); 8] = [
    ("VIEW", "z_base"),
    ("VIEW", "m_mid"),
    ("VIEW", "a_top"),
    ("TRIGGER", "t_bi"),
    ("TRIGGER", "t_ai"),
    ("PROCEDURE", "bump"),
    ("FUNCTION", "greet"),
    ("EVENT", "nightly"),
];

/// `SHOW CREATE` of an object, every column but a trigger's `Created`
/// time, with `normalize` applied to each value.
fn show_create(
    server: &Server,
    db: &str,
    kind: &str,
    name: &str,
    normalize: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let mut row = server.query_strings(&format!("SHOW CREATE {kind} `{db}`.`{name}`"))[0].clone();
    if kind == "TRIGGER" {
        row.pop();
    }
    row.into_iter()
        .map(|v| normalize(&v.unwrap_or_default()))
        .collect()
}

fn export_db(src: &Server, db: &str, dump: &Path, more: &[&str]) {
    assert_success(&myspool(&export_args(src, &format!("{db}.*"), dump, more)));
}

fn objects_file(dump: &Path, db: &str) -> std::path::PathBuf {
    dump.join(db).join("objects.sql")
}

#[test]
fn views_triggers_routines_and_events_round_trip() {
    let src = source_server();
    let dst = target_server();
    let db = db_with(&src, "objects", OBJECTS);
    let dump = tempfile::tempdir().unwrap();
    export_db(&src, &db, dump.path(), &[]);
    // Routines first, views each after those it reads, then triggers, events.
    let text = std::fs::read_to_string(objects_file(dump.path(), &db)).unwrap();
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("-- object: "))
        .map(|h| h.split('"').nth(7).unwrap())
        .collect();
    assert_eq!(
        order,
        ["greet", "bump", "z_base", "m_mid", "a_top", "t_ai", "t_bi", "nightly"],
        "{text}"
    );

    let status = stdout(&myspool(&["status", "--dir", &path_arg(dump.path())]));
    assert!(
        status.contains(&format!(
            "objects of {db}: 3 views, 2 triggers, 1 procedure, 1 function, 1 event"
        )),
        "{status}"
    );

    let out = myspool(&load_args(dump.path(), &dst, &["--json"]));
    assert_success(&out);
    let summary = json(&out);
    assert_eq!(summary["objects"][0]["views"], 3, "{summary}");
    assert_eq!(summary["objects"][0]["events"], 1, "{summary}");

    // The same definitions, definers and sessions (the target has the
    // source's definer: the same account of a fresh install).
    let same = |s: &str| s.to_string();
    for (kind, name) in NAMES {
        assert_eq!(
            show_create(&src, &db, kind, name, &same),
            show_create(&dst, &db, kind, name, &same),
            "{kind} {name}"
        );
    }
    // The triggers were created after the data: they did not fire on it.
    assert_same_table(&src, &db, &dst, &db, "t", "id");
    assert_same_table(&src, &db, &dst, &db, "audit", "id");
    // They fire now, the function concatenates under its own sql_mode, and
    // the views over views read the same.
    dst.query(&format!("INSERT INTO `{db}`.t (id, v) VALUES (1000, 5)"));
    assert_eq!(
        dst.scalar(&format!("SELECT note FROM `{db}`.t WHERE id = 1000")),
        Some("fired".into())
    );
    assert_eq!(count(&dst, &format!("`{db}`.audit")), 3);
    assert_eq!(
        dst.scalar(&format!("SELECT `{db}`.greet('x')")),
        Some("hi x".into())
    );
    let top = format!("SELECT n, s FROM `{db}`.a_top");
    src.query(&format!("INSERT INTO `{db}`.t (id, v) VALUES (1000, 5)"));
    assert_eq!(src.query_strings(&top), dst.query_strings(&top));

    // A rerun creates them again, replacing those there.
    let again = myspool(&load_args(dump.path(), &dst, &["--json"]));
    assert_success(&again);
    assert_eq!(json(&again)["objects"][0]["triggers"], 2);

    // A reload into the tables, which have the triggers now: they are
    // dropped before the data and made again after it, so they do not fire.
    assert_success(&myspool(&load_args(
        dump.path(),
        &dst,
        &["--restart", "--truncate"],
    )));
    assert_eq!(count(&dst, &format!("`{db}`.t WHERE note = 'fired'")), 0);
    assert_eq!(count(&dst, &format!("`{db}`.audit")), 2);
    assert_eq!(
        count(
            &dst,
            &format!("information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'")
        ),
        2
    );
}

#[test]
fn into_another_database_with_definer_strip_the_definitions_are_equal_but_for_definer() {
    let src = source_server();
    let dst = target_server();
    let db = db_with(&src, "objinto", OBJECTS);
    let dump = tempfile::tempdir().unwrap();
    export_db(&src, &db, dump.path(), &[]);
    let into = format!("{db}_copy");
    assert_success(&myspool(&load_args(
        dump.path(),
        &dst,
        &["--into", &into, "--definer", "strip"],
    )));
    let normalize = |s: &str| {
        with_definer(s, &DefinerPolicy::Strip).replace(&format!("`{into}`."), &format!("`{db}`."))
    };
    for (kind, name) in NAMES {
        let mut source = show_create(&src, &db, kind, name, &normalize);
        let mut target = show_create(&dst, &into, kind, name, &normalize);
        // The first column is the object's name.
        assert_eq!(source.remove(0), target.remove(0));
        assert_eq!(source, target, "{kind} {name}");
    }
    // The views read the loaded tables of the new database.
    assert_eq!(
        dst.scalar(&format!("SELECT n FROM `{into}`.a_top")),
        Some("90".into())
    );
}

#[test]
fn a_definer_missing_on_the_target_is_refused_before_anything_is_created() {
    let src = source_server();
    let dst = target_server();
    let ghost = format!("ghost_{}", std::process::id());
    src.query(&format!("CREATE USER IF NOT EXISTS '{ghost}'@'%'"));
    let db = db_with(
        &src,
        "objdefiner",
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);
             CREATE DEFINER = '{ghost}'@'%' VIEW v AS SELECT id FROM t;
             CREATE DEFINER = '{ghost}'@'%' PROCEDURE p() SELECT 1;"
        ),
    );
    let dump = tempfile::tempdir().unwrap();
    export_db(&src, &db, dump.path(), &[]);

    // keep (the default), and an account the target lacks: refused, nothing
    // created (not even the database).
    for more in [&[][..], &["--definer", "'nobody'@'%'"][..]] {
        let out = myspool(&load_args(dump.path(), &dst, more));
        let error = assert_one_line_error(&out);
        assert_eq!(table_count(&dst, &db), 0, "{error}");
        assert!(
            error.contains("the target lacks the definer of 2 object(s)")
                && error.contains("--definer strip"),
            "{error}"
        );
        let needed = if more.is_empty() {
            ghost.as_str()
        } else {
            "nobody"
        };
        assert!(
            error.contains(&format!("view {db}.v needs '{needed}'@'%'"))
                && error.contains(&format!("procedure {db}.p needs '{needed}'@'%'")),
            "{error}"
        );
    }

    // strip: the loading user is the definer.
    let stripped = format!("{db}_strip");
    assert_success(&myspool(&load_args(
        dump.path(),
        &dst,
        &["--into", &stripped, "--definer", "strip"],
    )));
    let loader = dst.scalar("SELECT CURRENT_USER()").unwrap();
    let definer = |into: &str| {
        dst.scalar(&format!(
            "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{into}' AND TABLE_NAME = 'v'"
        ))
    };
    assert_eq!(definer(&stripped), Some(loader));

    // An account the target has: every object gets it.
    let owner = format!("owner_{}", std::process::id());
    dst.query(&format!("CREATE USER IF NOT EXISTS '{owner}'@'%'"));
    let owned = format!("{db}_owned");
    assert_success(&myspool(&load_args(
        dump.path(),
        &dst,
        &["--into", &owned, "--definer", &format!("'{owner}'@'%'")],
    )));
    assert_eq!(definer(&owned), Some(format!("{owner}@%")));
    assert_eq!(
        dst.scalar(&format!(
            "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{owned}'"
        )),
        Some(format!("{owner}@%"))
    );

    // A malformed --definer is refused at once.
    let out = myspool(&load_args(dump.path(), &dst, &["--definer", "ghost"]));
    assert!(
        assert_one_line_error(&out).contains("expected keep, strip or 'user'@'host'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_objects_leaves_them_out_and_triggers_takes_named_tables_triggers() {
    let src = source_server();
    let dst = target_server();
    let db = db_with(&src, "objnone", OBJECTS);

    // export --no-objects: no objects.sql.
    let bare = tempfile::tempdir().unwrap();
    export_db(&src, &db, bare.path(), &["--no-objects"]);
    assert!(!objects_file(bare.path(), &db).exists());

    // load --no-objects: the tables only.
    let dump = tempfile::tempdir().unwrap();
    export_db(&src, &db, dump.path(), &[]);
    let into = format!("{db}_tables");
    assert_success(&myspool(&load_args(
        dump.path(),
        &dst,
        &["--into", &into, "--no-objects"],
    )));
    assert_eq!(table_count(&dst, &into), 2, "views were created");
    assert_eq!(
        count(
            &dst,
            &format!("information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{into}'")
        ),
        0
    );

    // A processed dump carries them along.
    let processed = tempfile::tempdir().unwrap();
    let out = processed.path().join("out");
    assert_success(&myspool(&process_cli(
        dump.path(),
        &out,
        &["--exec", "cat"],
        &[],
    )));
    assert_eq!(
        std::fs::read(objects_file(&out, &db)).unwrap(),
        std::fs::read(objects_file(dump.path(), &db)).unwrap()
    );

    // A table named alone: no objects, unless --triggers (then its
    // triggers only).
    let named = tempfile::tempdir().unwrap();
    let table = format!("{db}.t");
    assert_success(&myspool(&export_args(&src, &table, named.path(), &[])));
    assert!(!objects_file(named.path(), &db).exists());
    let with_triggers = tempfile::tempdir().unwrap();
    assert_success(&myspool(&export_args(
        &src,
        &table,
        with_triggers.path(),
        &["--triggers"],
    )));
    let status = stdout(&myspool(&[
        "status",
        "--dir",
        &path_arg(with_triggers.path()),
    ]));
    assert!(
        status.contains(&format!(
            "objects of {db}: 0 views, 2 triggers, 0 procedures, 0 functions, 0 events"
        )),
        "{status}"
    );
}

#[test]
fn copy_through_a_processing_step_creates_them_too() {
    let src = source_server();
    let dst = target_server();
    let db = db_with(&src, "objcopy", OBJECTS);
    let work = tempfile::tempdir().unwrap();
    let into = format!("{db}_copy");
    let out = myspool(&[
        "copy",
        "--from",
        &src.url(),
        "--to",
        &dst.url(),
        "--table",
        &format!("{db}.*"),
        "--dir",
        &path_arg(work.path()),
        "--exec",
        "cat",
        "--into",
        &into,
        "--definer",
        "strip",
        "--json",
    ]);
    assert_success(&out);
    let summary = json(&out);
    assert_eq!(summary["load"]["objects"][0]["views"], 3, "{summary}");
    assert_eq!(
        dst.scalar(&format!("SELECT n FROM `{into}`.a_top")),
        Some("90".into())
    );
    assert_same_table(&src, &db, &dst, &into, "audit", "id");
}

#[test]
fn a_user_who_may_not_create_them_is_refused_before_anything_is_created() {
    let src = source_server();
    let dst = target_server();
    let db = db_with(&src, "objgrants", OBJECTS);
    let dump = tempfile::tempdir().unwrap();
    export_db(&src, &db, dump.path(), &[]);
    let into = format!("{db}_user");
    let name = format!("objuser_{}", std::process::id());
    let url = user_with_grants(
        &dst,
        &name,
        &[(&into, "SELECT, INSERT, CREATE, DROP, ALTER, INDEX")],
    );
    let load = |more: &[&str]| {
        let mut args = vec!["load", "--dir", dump.path().to_str().unwrap(), "--to", &url];
        args.extend(["--into", &into]);
        args.extend(more);
        myspool(&args)
    };
    let error = assert_one_line_error(&load(&["--definer", "strip"]));
    assert!(
        error.contains(&format!(
            "the loading user lacks CREATE ROUTINE, ALTER ROUTINE, CREATE VIEW, TRIGGER, EVENT on {into} for the objects of {db}"
        )) && error.contains("binary log needs SUPER (or log_bin_trust_function_creators=ON")
            && !error.contains("SET USER"),
        "{error}"
    );
    assert_eq!(table_count(&dst, &into), 0, "{error}");
    // Keeping the source's definer (another account) needs SUPER too.
    let error = assert_one_line_error(&load(&[]));
    assert!(error.contains("needs SUPER or SET USER"), "{error}");

    // The target writes a binary log: triggers and functions need SUPER.
    dst.query(&format!(
        "GRANT CREATE ROUTINE, ALTER ROUTINE, CREATE VIEW, TRIGGER, EVENT ON `{into}`.* TO '{name}'@'%';
         GRANT SUPER ON *.* TO '{name}'@'%'"
    ));
    let out = load(&["--definer", "strip"]);
    assert_success(&out);
    assert_eq!(
        dst.scalar(&format!("SELECT n FROM `{into}`.a_top")),
        Some("90".into())
    );
}
