//! The example configuration in the repository parses and validates.

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/euphrosyne.toml");
    let cfg = euphrosyne::config::ServeConfig::from_file(&path).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:8080");
    assert_eq!(cfg.routes.len(), 1);
    let settings = cfg.reconciler_settings().unwrap();
    let trigger = euphrosyne::reconciler::trigger::Trigger::new(settings.trigger, settings.routes, 10);
    let info = [("severity".to_string(), "info".to_string())].into();
    assert_eq!(trigger.policy_for(&info).min_occurrences, 3);
    assert_eq!(trigger.policy_for(&Default::default()).min_occurrences, 1);
    assert_eq!(cfg.tokens[0].role, euphrosyne::config::Role::Approver);
}
