//! Checking a parsed query against an object's schema: canonical field
//! names, and literals of the right type for their fields.

use super::Query;
use super::ast::{CmpOp, Cond, FieldRef, Literal, StrChar, plain};
use super::error::{INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, SoqlError};
use crate::schema::{FieldDef, FieldType, SObjectSchema};

/// Canonicalises every field name of `query` and checks filter values.
pub(crate) fn resolve(query: &mut Query, schema: &SObjectSchema) -> Result<(), SoqlError> {
    let cx = Cx {
        text: &query.text,
        schema,
    };
    let mut positions = query.select_positions().into_iter();
    for name in &mut query.fields {
        let pos = positions.next().unwrap_or(0);
        *name = cx.field(name, pos)?.name.clone();
    }
    if let Some(cond) = &mut query.cond {
        cx.cond(cond)?;
    }
    for item in &mut query.order_by {
        let def = cx.field(&item.field, item.pos)?;
        item.field = def.name.clone();
        item.kind = Some(def.kind);
    }
    Ok(())
}

struct Cx<'a> {
    text: &'a str,
    schema: &'a SObjectSchema,
}

impl Cx<'_> {
    fn field(&self, name: &str, pos: usize) -> Result<&FieldDef, SoqlError> {
        if let Some((relationship, _)) = name.split_once('.') {
            // Salesforce's wording for an unknown relationship; the emulator
            // knows none, as it does not join records.
            return Err(SoqlError::at(
                INVALID_FIELD,
                self.text,
                pos,
                &format!(
                    "Didn't understand relationship '{relationship}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
                ),
            ));
        }
        self.schema.field(name).ok_or_else(|| {
            SoqlError::at(
                INVALID_FIELD,
                self.text,
                pos,
                &format!(
                    "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                    self.schema.name
                ),
            )
        })
    }

    fn field_ref(&self, field: &mut FieldRef) -> Result<FieldType, SoqlError> {
        let def = self.field(&field.name, field.pos)?;
        field.name = def.name.clone();
        field.kind = Some(def.kind);
        Ok(def.kind)
    }

    fn cond(&self, cond: &mut Cond) -> Result<(), SoqlError> {
        match cond {
            Cond::And(list) | Cond::Or(list) => {
                list.iter_mut().try_for_each(|c| self.cond(c))?;
            }
            Cond::Not(inner) => self.cond(inner)?,
            Cond::Cmp {
                field,
                op,
                value,
                pos,
            } => {
                let kind = self.field_ref(field)?;
                self.literal(&field.name, kind, *op, value, *pos)?;
            }
            Cond::In { field, values, .. } => {
                let kind = self.field_ref(field)?;
                for (value, pos) in values {
                    self.literal(&field.name, kind, CmpOp::Eq, value, *pos)?;
                }
            }
            Cond::SubQuery { field, .. } => {
                self.field_ref(field)?;
            }
        }
        Ok(())
    }

    /// Checks a literal's type against its field's; ids are normalised to
    /// 18 characters.
    fn literal(
        &self,
        name: &str,
        kind: FieldType,
        op: CmpOp,
        value: &mut Literal,
        pos: usize,
    ) -> Result<(), SoqlError> {
        let fits = match (kind, &*value) {
            (_, Literal::Null) => true,
            (k, Literal::Str(_)) => k.is_text(),
            (FieldType::Boolean, Literal::Bool(_)) => true,
            (FieldType::Int | FieldType::Double | FieldType::Currency, Literal::Number(_)) => true,
            (FieldType::Date, Literal::Date(_) | Literal::Named(_)) => true,
            (FieldType::DateTime, Literal::DateTime(_) | Literal::Named(_)) => true,
            _ => false,
        };
        if !fits {
            let (type_name, quoting) = match kind {
                k if k.is_text() => (text_type_name(k), "should be enclosed in quotes"),
                FieldType::DateTime => ("dateTime", "should not be enclosed in quotes"),
                k => (k.describe_name(), "should not be enclosed in quotes"),
            };
            return Err(SoqlError::at(
                INVALID_FIELD,
                self.text,
                pos,
                &format!(
                    "value of filter criterion for field '{name}' must be of type {type_name} and {quoting}"
                ),
            ));
        }
        if let (FieldType::Id | FieldType::Reference, Literal::Str(chars)) = (kind, &*value)
            && op != CmpOp::Like
        {
            let raw = plain(chars);
            match crate::ids::normalize(&raw) {
                Some(id) => *value = Literal::Str(id.chars().map(StrChar::Lit).collect()),
                None => {
                    return Err(SoqlError::at(
                        INVALID_QUERY_FILTER_OPERATOR,
                        self.text,
                        pos,
                        &format!("invalid ID field: {raw}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn text_type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Id | FieldType::Reference => "id",
        _ => "string",
    }
}
