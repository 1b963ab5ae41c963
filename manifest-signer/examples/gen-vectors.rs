//! Write the protocol test vectors: `cargo run -p manifest-signer --example gen-vectors -- tests/vectors`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "tests/vectors".into()));
    std::fs::create_dir_all(&dir)?;
    let vectors = manifest_signer::vectors::generate()?;
    let mut index = Vec::new();
    for (name, value) in &vectors {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        std::fs::write(dir.join(name), text)?;
        index.push(name.clone());
    }
    let mut text = serde_json::to_string_pretty(&index)?;
    text.push('\n');
    std::fs::write(dir.join("index.json"), text)?;
    println!("wrote {} vectors to {}", vectors.len(), dir.display());
    Ok(())
}
