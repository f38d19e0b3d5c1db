//! A debugger built against a WIT version the host does not speak (`euphrosyne:recipe@0.9.0`).
//! The host must refuse it as `incompatible`, naming both versions.

wit_bindgen::generate!({
    inline: r#"
        package euphrosyne:recipe@0.9.0;

        interface types {
            record incident { id: string, source: string }
            record analysis { summary: string, confidence: u8 }
            record recipe-error { message: string }
        }

        world debugger {
            use types.{incident, analysis, recipe-error};
            export debug: func(incident: incident) -> result<analysis, recipe-error>;
        }
    "#,
    world: "debugger",
});

struct Future;

impl Guest for Future {
    fn debug(
        incident: euphrosyne::recipe::types::Incident,
    ) -> Result<euphrosyne::recipe::types::Analysis, euphrosyne::recipe::types::RecipeError> {
        Ok(euphrosyne::recipe::types::Analysis {
            summary: incident.id,
            confidence: 100,
        })
    }
}

export!(Future);
