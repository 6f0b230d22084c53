//! Identifiers and generated names.
use rand::Rng;

fn hex32() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new run id: 32 lowercase hex digits, as MLflow makes them.
pub fn new_run_id() -> String {
    hex32()
}

/// A new logged-model id: `m-` and 32 hex digits, as MLflow 3 makes them.
pub fn new_logged_model_id() -> String {
    format!("m-{}", hex32())
}

const ADJECTIVES: &[&str] = &[
    "able", "bold", "brave", "bright", "calm", "clean", "clever", "crisp", "eager", "fair",
    "gentle", "glad", "grand", "honest", "keen", "kind", "lucky", "merry", "neat", "nimble",
    "polite", "proud", "quick", "quiet", "rare", "sharp", "shy", "silent", "smart", "steady",
    "sunny", "swift", "tidy", "vast", "warm", "wise",
];
const NOUNS: &[&str] = &[
    "ant", "bass", "bear", "bird", "cat", "crane", "deer", "dove", "eel", "finch", "fox", "frog",
    "gull", "hare", "hawk", "lark", "lynx", "mole", "moth", "newt", "owl", "panda", "robin",
    "seal", "shrew", "snail", "stork", "swan", "toad", "trout", "wasp", "whale", "wolf", "wren",
];

/// A readable random run name such as `brave-owl-42`, for runs created without one
/// (MLflow names them the same way).
pub fn random_run_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    format!("{adjective}-{noun}-{}", rng.random_range(0..1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_mlflow_shape() {
        let run = new_run_id();
        assert_eq!(run.len(), 32);
        assert!(run
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(run, new_run_id());
        let model = new_logged_model_id();
        assert!(model.starts_with("m-") && model.len() == 34);
        assert_eq!(random_run_name().split('-').count(), 3);
    }
}
