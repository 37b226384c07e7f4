//! Reading Avro binary: the primitives both decoders (to a JSON value and
//! to JSON text) share, with every length and count checked against the
//! bytes left before anything is allocated.

use super::Lookup;
use super::error::{Fail, Failure};
use apache_avro::Schema;
use apache_avro::schema::InnerDecimalSchema;

/// Deeper nesting than this is refused (a recursive schema and crafted
/// input would otherwise overflow the stack).
pub(super) const MAX_DEPTH: usize = 64;

/// Array items that may take no bytes at all (nulls, empty records) are
/// limited to this many per payload: their count is not bounded by the
/// payload's length.
pub(super) const MAX_FREE_ITEMS: usize = 100_000;

/// A payload being read, with the schema's named types.
pub(super) struct Reader<'s, 'b> {
    pub(super) lookup: Lookup<'s>,
    pub(super) buf: &'b [u8],
    pub(super) pos: usize,
    pub(super) depth: usize,
    pub(super) free_items: usize,
}

impl<'s, 'b> Reader<'s, 'b> {
    pub(super) fn new(schema: &'s Schema, payload: &'b [u8]) -> Self {
        Reader {
            lookup: Lookup::new(schema),
            buf: payload,
            pos: 0,
            depth: 0,
            free_items: 0,
        }
    }

    /// Fails when bytes are left after the datum.
    pub(super) fn finish(&self) -> Result<(), Failure> {
        if self.pos != self.buf.len() {
            return Err(Fail::at_byte(
                self.pos,
                format!(
                    "{} trailing bytes after the datum",
                    self.buf.len() - self.pos
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn fail(&self, reason: impl Into<String>) -> Failure {
        Fail::at_byte(self.pos, reason)
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'b [u8], Failure> {
        if n > self.remaining() {
            return Err(self.fail(format!(
                "truncated: {n} bytes expected, {} left",
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    /// A zigzag varint of at most 64 bits.
    #[inline]
    pub(super) fn long(&mut self) -> Result<i64, Failure> {
        let mut raw: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.fail("truncated: a number is cut short"));
            };
            if shift == 63 && byte > 1 {
                return Err(self.fail("a number longer than 64 bits"));
            }
            self.pos += 1;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub(super) fn int(&mut self) -> Result<i32, Failure> {
        let start = self.pos;
        let n = self.long()?;
        i32::try_from(n)
            .map_err(|_| Fail::at_byte(start, format!("{n} is out of range for an int")))
    }

    /// A length prefix, checked against the bytes left.
    #[inline]
    pub(super) fn len(&mut self) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.long()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            Ok(n) => Err(Fail::at_byte(
                start,
                format!("truncated: {n} bytes announced, {} left", self.remaining()),
            )),
            Err(_) => Err(Fail::at_byte(start, format!("negative length {n}"))),
        }
    }

    /// A string, borrowed from the payload.
    #[inline]
    pub(super) fn str(&mut self) -> Result<&'b str, Failure> {
        let n = self.len()?;
        let start = self.pos;
        let raw = self.take(n)?;
        std::str::from_utf8(raw).map_err(|_| Fail::at_byte(start, "a string that is not UTF-8"))
    }

    pub(super) fn boolean(&mut self) -> Result<bool, Failure> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.fail(format!("a boolean byte of {b}")))
            }
        }
    }

    pub(super) fn float(&mut self) -> Result<f32, Failure> {
        let raw = self.take(4)?;
        Ok(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    pub(super) fn double(&mut self) -> Result<f64, Failure> {
        let raw = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(raw);
        Ok(f64::from_le_bytes(b))
    }

    /// An enum's symbol.
    pub(super) fn symbol(
        &mut self,
        e: &'s apache_avro::schema::EnumSchema,
    ) -> Result<&'s str, Failure> {
        let start = self.pos;
        let i = self.int()?;
        match usize::try_from(i).ok().and_then(|i| e.symbols.get(i)) {
            Some(symbol) => Ok(symbol),
            None => Err(Fail::at_byte(
                start,
                format!(
                    "enum index {i}, but {} has {} symbols",
                    e.name.name(),
                    e.symbols.len()
                ),
            )),
        }
    }

    /// A union's branch.
    #[inline]
    pub(super) fn branch(
        &mut self,
        u: &'s apache_avro::schema::UnionSchema,
    ) -> Result<&'s Schema, Failure> {
        let start = self.pos;
        let i = self.long()?;
        let variants = u.variants();
        match usize::try_from(i).ok().and_then(|i| variants.get(i)) {
            Some(branch) => Ok(branch),
            None => Err(Fail::at_byte(
                start,
                format!("union branch {i}, but the union has {}", variants.len()),
            )),
        }
    }

    /// What a reference refers to.
    pub(super) fn resolve(&mut self, schema: &'s Schema) -> Result<&'s Schema, Failure> {
        let start = self.pos;
        self.lookup.resolve(schema).map_err(|f| f.at_offset(start))
    }

    pub(super) fn enter(&mut self) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// The item count of the next block (0 at the end); a negative count
    /// is followed by the block's size in bytes, which is not needed here.
    pub(super) fn block(&mut self) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.long()?;
        if n < 0 {
            self.len()?;
        }
        let n = n.unsigned_abs();
        usize::try_from(n).map_err(|_| Fail::at_byte(start, format!("a block of {n} items")))
    }

    /// The item count of an array's next block, checked: items that take
    /// no bytes count against [`MAX_FREE_ITEMS`], others against the bytes
    /// left.
    pub(super) fn array_block(&mut self, free: bool) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.block()?;
        if n == 0 {
            return Ok(0);
        }
        if free {
            self.free_items = self.free_items.saturating_add(n);
            if self.free_items > MAX_FREE_ITEMS {
                return Err(Fail::at_byte(
                    start,
                    format!("more than {MAX_FREE_ITEMS} empty array items"),
                ));
            }
        } else if n > self.remaining() {
            // Every item takes at least a byte.
            return Err(Fail::at_byte(
                start,
                format!(
                    "truncated: {n} items announced, {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    /// The entry count of a map's next block, checked against the bytes
    /// left (every entry takes at least a byte: its key's length).
    pub(super) fn map_block(&mut self) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.block()?;
        if n > self.remaining() {
            return Err(Fail::at_byte(
                start,
                format!(
                    "truncated: {n} entries announced, {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }
}

/// Whether a value of `schema` may take no bytes (then array counts are
/// not bounded by the payload's length). References count as possibly
/// empty: safe, and it keeps this from following cycles.
pub(super) fn may_be_empty(schema: &Schema) -> bool {
    match schema {
        Schema::Null | Schema::Ref { .. } => true,
        Schema::Record(r) => r.fields.iter().all(|f| may_be_empty(&f.schema)),
        Schema::Fixed(f) => f.size == 0,
        Schema::Decimal(apache_avro::schema::DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => f.size == 0,
        _ => false,
    }
}

/// A float as the shortest decimal that reads back as the same `f32`
/// (`0.1`, not `0.10000000149011612`), widened; `None` when not finite.
pub(super) fn shortest_float(f: f32) -> Option<f64> {
    if !f.is_finite() {
        return None;
    }
    Some(f.to_string().parse().unwrap_or(f64::from(f)))
}
