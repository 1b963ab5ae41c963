//! How deep rml_amf0 0.3 would nest decoding an AMF0 payload, computed without recursing
//! more than [`MAX_DEPTH`] levels.
//!
//! rml_amf0 decodes objects, ECMA arrays and strict arrays recursively with no depth limit,
//! so a few hundred KiB of nested objects overflow the stack of the thread decoding them. A
//! stack overflow aborts the process (`catch_unwind` cannot catch it), so AMF0 payloads are
//! checked here before rml_rtmp sees them.
//!
//! The walk follows rml_amf0's grammar exactly, quirks included (a `0x09` byte ends a strict
//! array early; a string cut short by the end of the payload is not an error), so it never
//! stops before rml_amf0 would. Where rml_amf0 fails, the connection closes anyway, so
//! walking past that point can only over-count, never miss, nesting.

use crate::bits::ByteReader;

/// Deepest nesting of containers (objects, ECMA and strict arrays, empty ones included)
/// accepted. `onMetaData` and `connect` nest 1 deep.
pub(crate) const MAX_DEPTH: usize = 32;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;

/// Why a walk stopped.
enum Stop {
    /// rml_amf0 fails here too (truncated input, unknown marker): nothing deeper is decoded.
    Invalid,
    /// Nesting goes beyond [`MAX_DEPTH`].
    TooDeep,
}

/// Whether rml_amf0 decodes `payload` (a whole AMF0 command or data message) without
/// nesting deeper than [`MAX_DEPTH`].
pub(crate) fn depth_ok(payload: &[u8]) -> bool {
    let mut r = ByteReader::new(payload, "AMF0");
    loop {
        match value(&mut r, 0) {
            Ok(true) => {}
            Ok(false) | Err(Stop::Invalid) => return true,
            Err(Stop::TooDeep) => return false,
        }
    }
}

/// Walks one value at `depth`. `Ok(false)`: no value (end of input or an object-end marker),
/// as rml_amf0's `read_next_value` returning `None`.
fn value(r: &mut ByteReader<'_>, depth: usize) -> Result<bool, Stop> {
    if r.remaining() == 0 {
        return Ok(false);
    }
    let marker = r.u8().map_err(|_| Stop::Invalid)?;
    match marker {
        OBJECT_END => return Ok(false),
        NUMBER => skip(r, 8)?,
        BOOLEAN => skip(r, 1)?,
        NULL | UNDEFINED => {}
        STRING => {
            let len = usize::from(r.u16().map_err(|_| Stop::Invalid)?);
            // rml_amf0 reads what is there and pads with zeros.
            let _ = r.bytes(len.min(r.remaining()));
        }
        OBJECT => object(r, depth)?,
        ECMA_ARRAY => {
            skip(r, 4)?;
            object(r, depth)?;
        }
        STRICT_ARRAY => {
            let inner = nested(depth)?;
            let count = r.u32().map_err(|_| Stop::Invalid)?;
            for _ in 0..count {
                if !value(r, inner)? {
                    break;
                }
            }
        }
        _ => return Err(Stop::Invalid),
    }
    Ok(true)
}

fn object(r: &mut ByteReader<'_>, depth: usize) -> Result<(), Stop> {
    let inner = nested(depth)?;
    loop {
        let label = usize::from(r.u16().map_err(|_| Stop::Invalid)?);
        if label == 0 {
            return match r.u8() {
                Ok(OBJECT_END) => Ok(()),
                _ => Err(Stop::Invalid),
            };
        }
        let _ = r.bytes(label.min(r.remaining()));
        if !value(r, inner)? {
            return Err(Stop::Invalid);
        }
    }
}

fn nested(depth: usize) -> Result<usize, Stop> {
    if depth >= MAX_DEPTH {
        return Err(Stop::TooDeep);
    }
    Ok(depth + 1)
}

fn skip(r: &mut ByteReader<'_>, n: usize) -> Result<(), Stop> {
    r.bytes(n).map(|_| ()).map_err(|_| Stop::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_objects(depth: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..depth {
            v.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        v.push(NULL);
        for _ in 0..depth {
            v.extend_from_slice(&[0, 0, OBJECT_END]);
        }
        v
    }

    #[test]
    fn real_commands_pass() {
        // connect("live") with a command object, then onMetaData as an ECMA array.
        let mut v = vec![STRING, 0, 7];
        v.extend_from_slice(b"connect");
        v.push(NUMBER);
        v.extend_from_slice(&1f64.to_be_bytes());
        v.extend_from_slice(&[OBJECT, 0, 3, b'a', b'p', b'p', STRING, 0, 4]);
        v.extend_from_slice(b"live");
        v.extend_from_slice(&[0, 0, OBJECT_END]);
        v.extend_from_slice(&[ECMA_ARRAY, 0, 0, 0, 1, 0, 5]);
        v.extend_from_slice(b"width");
        v.push(NUMBER);
        v.extend_from_slice(&1280f64.to_be_bytes());
        v.extend_from_slice(&[0, 0, OBJECT_END]);
        assert!(depth_ok(&v));
    }

    #[test]
    fn nesting_is_bounded() {
        assert!(depth_ok(&nested_objects(MAX_DEPTH)));
        assert!(!depth_ok(&nested_objects(MAX_DEPTH + 1)));
        assert!(!depth_ok(&nested_objects(100_000)));
        // Strict arrays and ECMA arrays nest too; the walk is not fooled by a truncated tail.
        let mut arrays = Vec::new();
        for _ in 0..=MAX_DEPTH {
            arrays.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        assert!(!depth_ok(&arrays));
        let mut ecma = Vec::new();
        for _ in 0..=MAX_DEPTH {
            ecma.extend_from_slice(&[ECMA_ARRAY, 0, 0, 0, 1, 0, 1, b'k']);
        }
        assert!(!depth_ok(&ecma));
    }

    #[test]
    fn garbage_never_panics() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = depth_ok(&[a, b, a, 0, 1, b]);
            }
        }
    }
}
