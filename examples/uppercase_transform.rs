//! The Rust counterpart of `myspool process --exec`: a row transform applied
//! to every chunk of a dump, offline, into a new dump.
//!
//!     cargo run --example uppercase_transform -- DIR OUT COLUMN
//!
//! Uppercases COLUMN (NULL stays NULL) and drops every column whose name
//! starts with `secret`.

use anyhow::{bail, Result};
use myspool::dialect::Field;
use myspool::process::{process_with, ProcessOptions, RowTransform};

pub struct Uppercase {
    pub column: String,
}

fn kept(name: &str) -> bool {
    !name.starts_with("secret")
}

impl RowTransform for Uppercase {
    fn columns(&self, input: &[String]) -> Result<Vec<String>> {
        if !input.contains(&self.column) {
            bail!("no column {} in {input:?}", self.column);
        }
        Ok(input.iter().filter(|c| kept(c)).cloned().collect())
    }

    fn transform(
        &self,
        input: &[String],
        row: Vec<Field>,
        emit: &mut dyn FnMut(Vec<Field>),
    ) -> Result<()> {
        let out = input
            .iter()
            .zip(row)
            .filter(|(name, _)| kept(name))
            .map(|(name, value)| match value {
                Some(bytes) if *name == self.column => {
                    Some(String::from_utf8_lossy(&bytes).to_uppercase().into_bytes())
                }
                other => other,
            })
            .collect();
        emit(out);
        Ok(())
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out, column] = args.as_slice() else {
        bail!("usage: uppercase_transform DIR OUT COLUMN");
    };
    let opts = ProcessOptions::new(dir, out, format!("uppercase_transform {column}"));
    let summary = process_with(
        &opts,
        &Uppercase {
            column: column.clone(),
        },
    )?;
    println!(
        "{} chunks, {} rows",
        summary.chunks_processed, summary.rows_out
    );
    Ok(())
}
