//! Reading a family's templates: every `*.pkr.hcl` of its folder parsed as
//! one configuration (as Packer loads a folder), and values read through
//! `local.*` references and `merge(...)` calls, the way gild's templates
//! share their tag maps.

use std::collections::BTreeMap;

use gild_core::catalog::{self, Os};
use hcl::expr::{Expression, ObjectKey, TraversalOperator};
use hcl::{Block, Body, Structure};

use super::{rule, Finding, Template};

/// One family's parsed templates.
pub(super) struct Family<'a> {
    pub name: &'a str,
    /// The family's folder, for findings about what no file holds.
    pub path: &'a str,
    pub os: Os,
    /// (file name, body) of every template that parses.
    files: Vec<(&'a str, Body)>,
    locals: BTreeMap<String, Expression>,
}

/// A `source` block, with the file it is in and the name messages use
/// (`amazon-ebs.<name>`).
pub(super) struct Source<'s> {
    pub file: &'s str,
    pub name: String,
    pub body: &'s Body,
}

impl<'a> Family<'a> {
    /// Parses the templates; a template that does not parse is a finding.
    pub fn parse(
        family: &'a catalog::Family,
        templates: &'a [Template],
        out: &mut Vec<Finding>,
    ) -> Self {
        let mut files = Vec::new();
        for template in templates {
            match hcl::parse(&template.text) {
                Ok(body) => files.push((template.file.as_str(), body)),
                Err(err) => out.push(Finding::new(
                    &template.file,
                    rule::HCL_SYNTAX,
                    format!("not valid HCL: {err}"),
                )),
            }
        }
        let mut locals = BTreeMap::new();
        for (_, body) in &files {
            for block in blocks(body, "locals") {
                for attribute in block.body().attributes() {
                    locals.insert(attribute.key().to_owned(), attribute.expr().clone());
                }
            }
        }
        Family {
            name: &family.name,
            path: &family.path,
            os: family.os,
            files,
            locals,
        }
    }

    /// (file name, body) of every template that parsed.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &Body)> + '_ {
        self.files.iter().map(|(file, body)| (*file, body))
    }

    /// Top-level blocks named `ident` across all files, with their file.
    pub fn blocks<'s>(&'s self, ident: &'s str) -> impl Iterator<Item = (&'a str, &'s Block)> + 's {
        self.files()
            .flat_map(move |(file, body)| blocks(body, ident).map(move |block| (file, block)))
    }

    /// Follows `local.<name>` references (a few levels deep).
    pub fn resolve<'e>(&'e self, mut expr: &'e Expression) -> &'e Expression {
        for _ in 0..8 {
            expr = match expr {
                Expression::Parenthesis(inner) => inner,
                Expression::Traversal(traversal) => {
                    let target = match (&traversal.expr, traversal.operators.as_slice()) {
                        (Expression::Variable(root), [TraversalOperator::GetAttr(name)])
                            if root.as_str() == "local" =>
                        {
                            self.locals.get(name.as_str())
                        }
                        _ => None,
                    };
                    match target {
                        Some(target) => target,
                        None => return expr,
                    }
                }
                _ => return expr,
            };
        }
        expr
    }

    /// The value as text: a literal, or the raw source of a template.
    pub fn text(&self, expr: &Expression) -> Option<String> {
        match self.resolve(expr) {
            Expression::String(s) => Some(s.clone()),
            Expression::TemplateExpr(template) => Some(template.to_string()),
            _ => None,
        }
    }

    /// A `locals` entry, as written.
    pub fn local(&self, name: &str) -> Option<&Expression> {
        self.locals.get(name)
    }

    /// Whether `expr` is (through locals) `var.family`: bake.yml passes the
    /// family being baked as that variable, so a shared template names its
    /// family through it.
    pub fn is_family_variable(&self, expr: &Expression) -> bool {
        matches!(
            self.resolve(expr),
            Expression::Traversal(t)
                if matches!(&t.expr, Expression::Variable(root) if root.as_str() == "var")
                    && matches!(t.operators.as_slice(), [TraversalOperator::GetAttr(name)] if name.as_str() == "family")
        )
    }

    /// The family's name as the template writes it: the name itself, or
    /// `var.family` (see [`Self::is_family_variable`]).
    pub fn names_family(&self, expr: &Expression) -> bool {
        self.is_family_variable(expr) || self.text(expr).as_deref() == Some(self.name)
    }

    pub fn boolean(&self, expr: &Expression) -> Option<bool> {
        match self.resolve(expr) {
            Expression::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// An object's entries by key, through `local.*` references and
    /// `merge(...)` calls.
    pub fn entries(&self, expr: &Expression) -> Option<BTreeMap<String, Expression>> {
        match self.resolve(expr) {
            Expression::Object(object) => {
                let mut entries = BTreeMap::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Identifier(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(key) => self.text(key)?,
                        _ => return None,
                    };
                    entries.insert(key, value.clone());
                }
                Some(entries)
            }
            Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
                let mut entries = BTreeMap::new();
                for arg in &call.args {
                    entries.extend(self.entries(arg)?);
                }
                Some(entries)
            }
            _ => None,
        }
    }

    /// Whether the value is something other than an empty or null literal.
    pub fn is_set(&self, expr: &Expression) -> bool {
        match self.resolve(expr) {
            Expression::Null => false,
            Expression::String(s) => !s.trim().is_empty(),
            _ => true,
        }
    }

    /// `key` of `body` as text.
    pub fn text_at(&self, body: &Body, key: &str) -> Option<String> {
        attr(body, key).and_then(|v| self.text(v))
    }

    /// `key` of `body` as a boolean literal.
    pub fn boolean_at(&self, body: &Body, key: &str) -> Option<bool> {
        attr(body, key).and_then(|v| self.boolean(v))
    }

    /// `key` of `body` as an object's entries.
    pub fn entries_at(&self, body: &Body, key: &str) -> Option<BTreeMap<String, Expression>> {
        attr(body, key).and_then(|v| self.entries(v))
    }

    /// Whether `key` of `body` is present and neither empty nor null.
    pub fn is_set_at(&self, body: &Body, key: &str) -> bool {
        attr(body, key).is_some_and(|v| self.is_set(v))
    }
}

/// Blocks named `ident` directly in `body`.
pub(super) fn blocks<'b>(body: &'b Body, ident: &'b str) -> impl Iterator<Item = &'b Block> + 'b {
    body.blocks()
        .filter(move |block| block.identifier() == ident)
}

/// The expression of attribute `key` directly in `body`.
pub(super) fn attr<'b>(body: &'b Body, key: &str) -> Option<&'b Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(|attribute| attribute.expr())
}

/// A block's label at `index`, or "" when it has none there.
pub(super) fn label(block: &Block, index: usize) -> &str {
    block.labels().get(index).map_or("", |label| label.as_str())
}

/// Every attribute in a body, in nested blocks too.
pub(super) fn all_attributes<'b>(body: &'b Body, out: &mut Vec<(&'b str, &'b Expression)>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => out.push((attribute.key(), attribute.expr())),
            Structure::Block(block) => all_attributes(block.body(), out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::catalog::Os;

    fn parsed(text: &str, test: impl FnOnce(&Family<'_>, &Body)) {
        let family = super::super::fixtures::family("demo-linux", Os::Linux);
        let templates = [Template {
            file: "t.pkr.hcl".into(),
            text: text.into(),
        }];
        let mut findings = Vec::new();
        let parsed = Family::parse(&family, &templates, &mut findings);
        assert_eq!(findings, vec![]);
        let (_, body) = parsed.files().next().expect("one file");
        test(&parsed, body);
    }

    #[test]
    fn values_are_read_through_locals_and_merge() {
        let text = r#"
            locals {
              base  = { a = "1", "b:c" = local.name }
              name  = "n"
              alias = local.name
            }
            x = merge(local.base, { d = true })
            y = (local.alias)
            z = "${local.name}-suffix"
        "#;
        parsed(text, |family, body| {
            let entries = family.entries_at(body, "x").expect("an object");
            assert_eq!(
                entries.keys().collect::<Vec<_>>(),
                ["a", "b:c", "d"].iter().collect::<Vec<_>>()
            );
            assert_eq!(family.text(&entries["b:c"]).as_deref(), Some("n"));
            assert_eq!(family.boolean(&entries["d"]), Some(true));
            assert_eq!(family.text_at(body, "y").as_deref(), Some("n"));
            // A template is read as its source text.
            assert_eq!(
                family.text_at(body, "z").as_deref(),
                Some("${local.name}-suffix")
            );
        });
    }

    #[test]
    fn unset_values_are_not_set() {
        let text = "a = \"\"\nb = null\nc = \" \"\nd = var.x\n";
        parsed(text, |family, body| {
            assert!(!family.is_set_at(body, "a"));
            assert!(!family.is_set_at(body, "b"));
            assert!(!family.is_set_at(body, "c"));
            assert!(family.is_set_at(body, "d"));
            assert!(!family.is_set_at(body, "missing"));
        });
    }

    #[test]
    fn nested_attributes_are_all_found() {
        let text = "a = 1\nouter \"l\" {\n  b = 2\n  inner {\n    c = 3\n  }\n}\n";
        parsed(text, |_, body| {
            let mut found = Vec::new();
            all_attributes(body, &mut found);
            let keys: Vec<&str> = found.iter().map(|(key, _)| *key).collect();
            assert_eq!(keys, ["a", "b", "c"]);
        });
    }
}
