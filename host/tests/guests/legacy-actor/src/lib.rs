//! An actor built against the frozen `euphrosyne:recipe@0.1.0` contract (`wit/v0.1.0/`), the
//! way a recipe built before 0.2.0 was: the host must still run it unchanged. With a
//! `deployment` parameter it sets an annotation on that Deployment with 0.1.0's merge patch (so
//! a preview of it is a dry run too); without one it only answers.

#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../../../wit/v0.1.0",
    world: "actor",
    generate_all,
});

use euphrosyne::recipe::kubernetes;

struct Legacy;

fn param<'a>(params: &'a str, key: &str) -> Option<&'a str> {
    // `{"namespace":"shop","deployment":"api"}`: no JSON crate, keep the guest small.
    let at = params.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = params[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

impl Guest for Legacy {
    fn act(request: ActionRequest) -> Result<Outcome, RecipeError> {
        let summary = format!("legacy actor ran `{}` for {}", request.action, request.approved_by);
        if let (Some(ns), Some(name)) = (
            param(&request.parameters, "namespace"),
            param(&request.parameters, "deployment"),
        ) {
            let patch = r#"{"metadata":{"annotations":{"euphrosyne.dev/legacy":"touched"}}}"#;
            kubernetes::patch("apps/v1", "Deployment", Some(ns), name, patch).map_err(|e| RecipeError {
                message: format!("patch failed: {e:?}"),
            })?;
        }
        Ok(Outcome {
            success: true,
            summary,
            details: String::new(),
        })
    }
}

export!(Legacy);
