//! Which services a status filter keeps, and what is a problem.

use super::*;
use crate::config::FailbackMode;
use crate::decide::views::{Mode, RegionStatus, TargetStatus};

fn target(name: &str, healthy: Option<bool>) -> TargetStatus {
    TargetStatus {
        name: name.into(),
        addresses: vec![],
        healthy,
        drained: None,
        last_check: None,
    }
}

fn service(name: &str, active: &str, health: &[Option<bool>]) -> ServiceStatus {
    let names = ["primary", "backup", "backup2"];
    ServiceStatus {
        name: name.into(),
        fqdn: format!("{name}.example."),
        ttl: 30,
        active: active.into(),
        mode: Mode::Auto,
        failback: FailbackMode::Manual,
        pin: None,
        all_down: health.iter().all(|h| *h == Some(false)),
        drill: None,
        targets: health
            .iter()
            .zip(names)
            .map(|(h, n)| target(n, *h))
            .collect(),
        regions: vec![],
    }
}

fn region(name: &str, active: &str, order: &[&str]) -> RegionStatus {
    RegionStatus {
        name: name.into(),
        active: active.into(),
        addresses: vec![],
        order: order.iter().map(|s| s.to_string()).collect(),
        pin: None,
        drill: None,
    }
}

fn view() -> StatusView {
    let up = Some(true);
    let down = Some(false);
    let mut geo = service("geo", "primary", &[up, up]);
    geo.regions = vec![
        region("eu", "primary", &["primary", "backup"]),
        region("us", "primary", &["backup", "primary"]),
        region("default", "primary", &["primary", "backup"]),
    ];
    StatusView {
        services: vec![
            service("fine", "primary", &[up, up]),
            service("standby-down", "primary", &[up, down]),
            service("moved", "backup", &[down, up]),
            service("dark", "primary", &[down, down]),
            service("fresh", "primary", &[None, None]),
            geo,
        ],
        zones: vec![],
        publishers: vec![],
        cluster: None,
    }
}

fn names(v: &StatusView) -> Vec<&str> {
    v.services.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn problems_are_all_down_not_preferred_and_target_down() {
    let v = view();
    let p: Vec<Option<Problem>> = v.services.iter().map(problem).collect();
    assert_eq!(
        p,
        [
            None,
            Some(Problem::TargetDown),
            Some(Problem::NotPreferred),
            Some(Problem::AllDown),
            None,
            Some(Problem::NotPreferred), // region us answers its second choice
        ]
    );
}

#[test]
fn down_keeps_problems_in_config_order_and_page_order_is_worst_first() {
    let mut v = view();
    let f = Filter {
        down: true,
        ..Filter::default()
    };
    f.apply(&mut v).unwrap();
    assert_eq!(names(&v), ["standby-down", "moved", "dark", "geo"]);
    let mut all = view();
    problems_first(&mut all.services);
    assert_eq!(
        names(&all),
        ["dark", "moved", "geo", "standby-down", "fine", "fresh"]
    );
}

#[test]
fn names_region_and_text_combine() {
    let mut v = view();
    let f = Filter {
        services: Filter::names(Some("fine, dark,,")),
        ..Filter::default()
    };
    f.apply(&mut v).unwrap();
    assert_eq!(names(&v), ["fine", "dark"]);

    let mut v = view();
    let f = Filter {
        region: Some("us".into()),
        ..Filter::default()
    };
    f.apply(&mut v).unwrap();
    assert_eq!(names(&v), ["geo"]);
    assert_eq!(v.services[0].regions.len(), 1);
    assert_eq!(v.services[0].regions[0].name, "us");

    let mut v = view();
    let f = Filter {
        text: Some("DOWN".into()),
        ..Filter::default()
    };
    f.apply(&mut v).unwrap();
    assert_eq!(names(&v), ["standby-down"]);
}

#[test]
fn unknown_names_and_regions_are_errors_that_list_what_exists() {
    let f = Filter {
        services: vec!["nope".into()],
        ..Filter::default()
    };
    let e = f.apply(&mut view()).unwrap_err().to_string();
    assert!(
        e.contains("no service named `nope`") && e.contains("`fine`"),
        "{e}"
    );
    let f = Filter {
        region: Some("mars".into()),
        ..Filter::default()
    };
    let e = f.apply(&mut view()).unwrap_err().to_string();
    assert_eq!(e, "no region named `mars` (regions: `default`, `eu`, `us`)");
}
