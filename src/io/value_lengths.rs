//! Declared value lengths checked against the file size before dicom-rs reads the file.
//!
//! dicom-parser allocates (and zero-fills) a buffer of an element's declared length *before* it
//! reads the value, so a 3 kB file whose element header claims 0xFFFFFFF0 bytes makes it allocate
//! and fill 4 GiB, which takes minutes and may exhaust memory (found by the `dicom_loader` fuzz
//! target: one VR byte changed to an unknown VR turns the next 4 bytes into a 32-bit length).
//! No value can extend past the end of the file, so such a header is refused here in one line.
//!
//! The walk follows the element grammar of PS3.5 7.1 as dicom-rs reads it: the File Meta group
//! (explicit VR little endian) after "DICM", as long as its group length (0002,0000) says, then
//! the data set in its transfer syntax.
//! Explicit VR: the VRs of PS3.5 table 7.1-2 (AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST
//! TM UI UL US) have a 16-bit length after the VR, every other VR (unknown ones too, which
//! dicom-parser reads as UN) a reserved 16 bits and a 32-bit length. Implicit VR: a 32-bit length.
//! Sequences and items are entered (their elements follow inline) and delimiters and items are
//! read as dicom-parser 0.10 reads them, which depends on whether it expects an element or an item
//! header (see [`Walker::data_set`]); an undefined length (0xFFFFFFFF) is entered too, whatever the
//! VR, as dicom-parser does; the items of encapsulated pixel data are fragments and are skipped; a numeric
//! value advances by whole numbers only, as dicom-parser reads it (see [`consumed`]). Where the
//! grammar is one this walk does not follow (deflated data sets), it stops and
//! leaves the file to dicom-rs, so it only ever refuses what dicom-rs could not read. Explicit VR
//! big endian is walked as explicit VR little endian with its tags and lengths byte-swapped (a
//! little-endian file relabelled big endian made dicom-parser zero-fill 1.4 GB, found by the
//! `dicom_loader` target).

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::dicom::Layout;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";

/// `Err(reason)` when some element's declared length runs past the end of the file. A file that
/// cannot be read is left to dicom-rs, which reports that itself.
pub(super) fn check(path: &Path, layout: Layout) -> Result<(), String> {
    match walk(path, layout) {
        Err(Stop::TooLong(reason)) => Err(reason),
        Ok(()) | Err(Stop::Io) => Ok(()),
    }
}

enum Stop {
    Io,
    TooLong(String),
}

impl From<std::io::Error> for Stop {
    fn from(_: std::io::Error) -> Self {
        Stop::Io
    }
}

fn walk(path: &Path, layout: Layout) -> Result<(), Stop> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut r = Walker {
        src: BufReader::new(file),
        pos: 0,
        size,
        big_endian: false,
    };
    let (start, explicit) = match layout {
        Layout::Part10 => (132, None),
        Layout::Part10NoPreamble => (4, None),
        Layout::DataSet { explicit_vr } => (0, Some(explicit_vr)),
    };
    r.skip(start)?;
    let explicit = match explicit {
        Some(explicit) => explicit,
        None => match r.meta()? {
            Some(ts) if ts == IMPLICIT_VR_LE => false,
            // Deflated data sets (…1.2.1.99) are not walked.
            Some(ts) if ts.starts_with(EXPLICIT_VR_LE) && ts != EXPLICIT_VR_LE => return Ok(()),
            // The File Meta is little endian whatever the transfer syntax; the data set is not.
            Some(ts) if ts == EXPLICIT_VR_BE => {
                r.big_endian = true;
                true
            }
            // An unknown transfer syntax is dicom-rs's to report.
            Some(ts) if TransferSyntaxRegistry.get(&ts).is_none() => return Ok(()),
            Some(_) => true,
            None => return Ok(()),
        },
    };
    r.data_set(explicit)
}

struct Walker<R> {
    src: R,
    pos: u64,
    size: u64,
    /// Data set in explicit VR big endian (the File Meta is read before this is set).
    big_endian: bool,
}

/// Element header as dicom-parser decodes it.
struct Header {
    tag: Tag,
    vr: Option<VR>,
    len: u32,
}

impl<R: Read + Seek> Walker<R> {
    fn left(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let delta = i64::try_from(n).map_err(|_| Stop::Io)?;
        self.src.seek_relative(delta).map_err(|_| Stop::Io)?;
        self.pos += n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let mut b = [0u8; N];
        self.src.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        let b = self.bytes::<2>()?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self) -> Result<u32, Stop> {
        let b = self.bytes::<4>()?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// Next header, or None when too few bytes are left for one (dicom-rs reports that itself).
    fn header(&mut self, explicit: bool) -> Result<Option<Header>, Stop> {
        if self.left() < 8 {
            return Ok(None);
        }
        let tag = Tag(self.u16()?, self.u16()?);
        if tag.group() == 0xFFFE || !explicit {
            let len = self.u32()?;
            return Ok(Some(Header { tag, vr: None, len }));
        }
        let v = self.bytes::<2>()?;
        let vr = VR::from_binary(v).unwrap_or(VR::UN);
        use VR::*;
        let short = matches!(
            vr,
            AE | AS
                | AT
                | CS
                | DA
                | DS
                | DT
                | FL
                | FD
                | IS
                | LO
                | LT
                | PN
                | SH
                | SL
                | SS
                | ST
                | TM
                | UI
                | UL
                | US
        );
        let len = if short {
            u32::from(self.u16()?)
        } else {
            if self.left() < 6 {
                return Ok(None);
            }
            self.bytes::<2>()?;
            self.u32()?
        };
        Ok(Some(Header {
            tag,
            vr: Some(vr),
            len,
        }))
    }

    fn fits(&self, h: &Header) -> Result<(), Stop> {
        if u64::from(h.len) > self.left() {
            return Err(Stop::TooLong(format!(
                "element ({:04X},{:04X}) claims {} bytes but only {} remain in the file",
                h.tag.group(),
                h.tag.element(),
                h.len,
                self.left()
            )));
        }
        Ok(())
    }

    /// The File Meta group, read as dicom-object reads it: the group length (0002,0000) first,
    /// then elements until their headers and values add up to that length, whatever their tags
    /// (an element of another group there is part of the File Meta, not the start of the data
    /// set). Returns the transfer syntax UID it names.
    fn meta(&mut self) -> Result<Option<String>, Stop> {
        let Some(h) = self.header(true)? else {
            return Ok(None);
        };
        // dicom-object refuses any other first element itself.
        if h.tag != Tag(0x0002, 0x0000) || h.len != 4 {
            return Ok(None);
        }
        let group_length = self.u32()?;
        let mut ts = None;
        let mut read = 0u32;
        while read < group_length {
            let mark = self.pos;
            let Some(h) = self.header(true)? else {
                return Ok(ts);
            };
            if h.len == UNDEFINED {
                return Ok(None);
            }
            self.fits(&h)?;
            if h.tag == Tag(0x0002, 0x0010) && h.len <= 128 {
                let mut v = vec![0u8; h.len as usize];
                self.src.read_exact(&mut v).map_err(|_| Stop::Io)?;
                self.pos += u64::from(h.len);
                let text = String::from_utf8_lossy(&v);
                ts = Some(text.trim_end_matches(['\0', ' ']).to_string());
            } else {
                self.skip(u64::from(h.len))?;
            }
            // Header and value, saturating as dicom-object counts them.
            read = read.saturating_add(u32::try_from(self.pos - mark).unwrap_or(u32::MAX));
        }
        Ok(ts)
    }

    /// The data set as dicom-parser 0.10's `DataSetReader` tokenises it. It keeps a stack of open
    /// sequences and items and is in one of two modes: reading element headers (the top level
    /// and inside items), or, right after a sequence starts or an item ends, reading item headers.
    /// In element mode an item delimiter (FFFE,E00D) closes the innermost open sequence or item
    /// (outside any it is ignored), while any other (FFFE,xxxx) header of defined length, an
    /// item or a sequence delimiter too, is read as an element whose value follows (found by the
    /// `dicom_loader` target: an item outside any sequence and a sequence delimiter claiming
    /// 0x10000000 bytes, both taken as values). In item mode an item is entered, an item
    /// delimiter closes the innermost open one (leaving item mode on) and a sequence delimiter
    /// closes it and leaves item mode, whatever lengths they claim; anything else stops
    /// dicom-parser. Encapsulated pixel data is a sequence whose items are fragments, read whole;
    /// after it the data set goes on as dicom-parser reads it (found by the `dicom_loader` target:
    /// an item delimiter right after the fragments, then elements that the walk had not followed).
    /// Sequences and items of defined length end where their length says.
    fn data_set(&mut self, explicit: bool) -> Result<(), Stop> {
        let dict = StandardDataDictionary;
        let mut open: Vec<Open> = Vec::new();
        let mut in_sequence = false;
        loop {
            while let Some(&Open {
                item,
                end: Some(end),
                ..
            }) = open.last()
            {
                if self.pos < end {
                    break;
                }
                open.pop();
                in_sequence = item;
            }
            let Some(h) = self.header(explicit && !in_sequence)? else {
                break;
            };
            let defined = h.len != UNDEFINED;
            let item_tag = |e: u16| h.tag == Tag(0xFFFE, e);
            if in_sequence {
                if item_tag(0xE000) {
                    // An item inherits "pixel data" from what it opens in; none open: an error.
                    let Some(pixel) = open.last().map(|o| o.pixel) else {
                        break;
                    };
                    if !pixel {
                        open.push(Open {
                            item: true,
                            end: defined.then(|| self.pos + u64::from(h.len)),
                            pixel,
                        });
                        in_sequence = false;
                    } else if defined {
                        // A fragment: read whole, then the item ends.
                        self.fits(&h)?;
                        self.skip(u64::from(h.len))?;
                    } else {
                        break;
                    }
                } else if item_tag(0xE00D) {
                    open.pop();
                } else if item_tag(0xE0DD) {
                    open.pop();
                    in_sequence = false;
                } else {
                    break;
                }
                continue;
            }
            if item_tag(0xE00D) {
                if open.pop().is_some() {
                    in_sequence = true;
                }
                continue;
            }
            // Implicit VR: the dictionary's VR, as dicom-parser takes it; group lengths are UL.
            let vr = match h.vr {
                Some(vr) => vr,
                None if h.tag.group() == 0xFFFE => VR::UN,
                None if h.tag.element() == 0 => VR::UL,
                None => dict.by_tag(h.tag).map_or(VR::UN, |e| e.vr().relaxed()),
            };
            if !defined {
                // Encapsulated pixel data, or any other element of undefined length, whatever its
                // VR (UN, or an unknown VR read as UN), which dicom-parser reads as a sequence in
                // the same encoding (found by the `dicom_loader` target: the walk had stopped
                // there).
                open.push(Open {
                    item: false,
                    end: None,
                    pixel: h.tag == Tag(0x7FE0, 0x0010),
                });
                in_sequence = true;
                continue;
            }
            self.fits(&h)?;
            if vr == VR::SQ {
                open.push(Open {
                    item: false,
                    end: Some(self.pos + u64::from(h.len)),
                    pixel: false,
                });
                in_sequence = true;
            } else {
                self.skip(u64::from(consumed(vr, h.len)))?;
            }
        }
        Ok(())
    }
}

/// An open sequence or item: where it ends (None: at a delimiter) and whether it is encapsulated
/// pixel data (whose items are fragments).
#[derive(Clone, Copy)]
struct Open {
    item: bool,
    end: Option<u64>,
    pixel: bool,
}

/// Bytes dicom-parser consumes for a value of `len` bytes: numbers are read as `len / size`
/// whole values, so the remainder of a length that is not a multiple of the size stays in the
/// stream and is read as the start of the next element (found by the `raster_loader` target).
fn consumed(vr: VR, len: u32) -> u32 {
    use VR::*;
    let size = match vr {
        US | OW | SS => 2,
        AT | FL | OF | UL | OL | SL => 4,
        FD | OD | UV | OV | SV => 8,
        _ => 1,
    };
    len - len % size
}
