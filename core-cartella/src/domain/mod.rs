//! Domain rules of the cartella sociale as pure functions over the `cartella.v1` messages:
//! formats of codes, coherent dates, amounts, and what a prestazione needs by its carattere.
//! Each validator returns every violation at once so an operator fixes a form in one pass.

pub mod codes;
pub mod codice_fiscale;
pub mod validate;

/// One bad field: `field` is the path in the request message (e.g. `prestazione.importo`),
/// `description` says what is wrong without repeating the value (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

/// Collects violations under a path prefix.
#[derive(Debug, Default)]
pub struct Violations {
    prefix: String,
    items: Vec<Violation>,
}

impl Violations {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string(), items: Vec::new() }
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        let field = if self.prefix.is_empty() { field.to_string() } else { format!("{}.{field}", self.prefix) };
        self.items.push(Violation { field, description: description.into() });
    }

    /// Adds `description` when `bad` holds.
    pub fn check(&mut self, bad: bool, field: &str, description: &str) {
        if bad {
            self.add(field, description);
        }
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
