//! Problems found in a descriptor, each at its file, line and column.

use std::fmt;
use thiserror::Error;

/// One problem in a descriptor, displayed `FILE:LINE:COL: message`.
///
/// Lines and columns count from 1 (columns in characters). A problem that belongs to
/// the whole file (it cannot be read) has line and column 0 and is displayed
/// `FILE: message`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct DescriptorError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
        }
    }
}

/// Every problem found in one descriptor, in file order (never empty).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub struct DescriptorErrors(pub Vec<DescriptorError>);

impl DescriptorErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, DescriptorError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a DescriptorErrors {
    type Item = &'a DescriptorError;
    type IntoIter = std::slice::Iter<'a, DescriptorError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for DescriptorErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
