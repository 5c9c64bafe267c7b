#!/usr/bin/env python3
"""Make byte-level token shards (llm.c's format) for the trainers.

  python3 data/prepare.py                      11 public-domain works, ~29 MB, split by work (the default) -> data/books/
  python3 data/prepare.py --corpus austen      Jane Austen's six novels -> data/austen/
  python3 data/prepare.py --corpus kjv         King James Bible -> data/kjv/
  python3 data/prepare.py --text a.txt b.txt --out DIR
                                               any local text -> DIR/NAME_train.bin, DIR/NAME_val.bin
  python3 data/prepare.py --decode F.bin [--max N]
                                               print a byte-level shard back as text
  python3 data/prepare.py --check F.bin        validate a shard (byte-level or llm.c GPT-2)

Shard: little-endian int32 header[256] (header[0] = 20240520, header[1] = 1,
header[2] = ntokens), then ntokens uint16 tokens. Tokens here are the bytes of
the UTF-8 text (vocab 256). The last --val-fraction of the bytes, cut at a line
break, is the val split; the rest is train. The books corpus is split by
document instead: a fixed list of whole works is val.

Python 3 standard library only, so that it runs on a bare Debian machine. The
corpora come from Debian packages fetched with `apt-get download`; nothing is
installed.
"""

import argparse
import array
import gzip
import hashlib
import html
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
DATA_DIR = os.path.dirname(os.path.abspath(__file__))
PROG = "prepare.py"


class Fail(Exception):
    """An expected failure: main() prints it as one line and exits 1."""


# ---------------------------------------------------------------- shards

def shard_bytes(text):
    """The shard for byte-level text: each byte becomes one uint16 token."""
    header = struct.pack("<%di" % HEADER_INTS, MAGIC, VERSION, len(text), *[0] * (HEADER_INTS - 3))
    tokens = bytearray(2 * len(text))
    tokens[0::2] = text  # little-endian uint16: low byte = the byte, high byte = 0
    return header + tokens


def read_shard(path):
    """Return (ntokens, token bytes) after checking the header and the size."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                raise Fail("%s: truncated: %d bytes, shorter than the %d-byte header"
                           % (path, len(header), HEADER_BYTES))
            magic, version, ntokens = struct.unpack("<3i", header[:12])
            if magic != MAGIC:
                raise Fail("%s: wrong magic %d, expected %d (llm.c's uint16 token shard)"
                           % (path, magic, MAGIC))
            if version != VERSION:
                raise Fail("%s: version %d, expected %d" % (path, version, VERSION))
            if ntokens < 0:
                raise Fail("%s: header says %d tokens, expected a count >= 0" % (path, ntokens))
            tokens = f.read()
    except OSError as e:
        raise Fail("%s: %s" % (path, e.strerror))
    if len(tokens) != 2 * ntokens:
        what = "truncated" if len(tokens) < 2 * ntokens else "trailing bytes"
        raise Fail("%s: %s: header says %d tokens (%d bytes after the header), file has %d"
                   % (path, what, ntokens, 2 * ntokens, len(tokens)))
    return ntokens, tokens


def max_token(tokens):
    values = array.array("H", tokens)
    if sys.byteorder == "big":
        values.byteswap()
    return max(values, default=0)


def check(path):
    ntokens, tokens = read_shard(path)
    top = max_token(tokens)
    kind = "byte-level" if top < 256 else "needs vocab >= %d, e.g. GPT-2's 50257" % (top + 1)
    print("%s: ok, %d tokens, max token %d (%s)" % (path, ntokens, top, kind))


def decode(path, limit):
    _, tokens = read_shard(path)
    if limit is not None:
        tokens = tokens[:2 * limit]
    high = tokens[1::2]
    if any(high):
        i = next(i for i, b in enumerate(high) if b)
        token = tokens[2 * i] | high[i] << 8
        raise Fail("%s: token %d at position %d is not a byte; --decode reads byte-level shards only"
                   % (path, token, i))
    sys.stdout.buffer.write(tokens[0::2])
    sys.stdout.buffer.flush()


# ---------------------------------------------------------------- splitting and writing

def split(text, val_fraction, source):
    """Cut after the last line break at or before the val_fraction point, so
    that val starts at the beginning of a line."""
    target = len(text) - max(1, round(len(text) * val_fraction))
    cut = text.rfind(b"\n", 0, target) + 1
    if cut == 0:  # no line break before the target: take the first one after it
        cut = text.find(b"\n", target) + 1
    if cut == 0 or cut == len(text):
        raise Fail("%s: no line break to cut a val split at (train and val must both be non-empty)"
                   % source)
    return text[:cut], text[cut:]


def write_if_changed(path, data):
    """Write data to path unless the file already holds exactly that; True if written."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(data)
    return True


# A corpus split by work (books) holds its train works one after another, and the trainers read a
# shard in order: a run would train on one work for thousands of steps, then the next, and its val
# loss would follow whichever it is on. So its train shard takes the train text in pieces of about
# 64 KiB, each ending at a line break, in one fixed shuffled order: every stretch of training mixes
# the works, and the shard is the same on every machine. The val shard is cut and shuffled the same
# way, so that its first batches (what a run's periodic val loss reads) hold all the val works.
PIECE_BYTES = 65536
PIECE_ORDER_SEED = 20261204


def shuffled_pieces(text):
    """text cut into pieces of about PIECE_BYTES, each ending at a line break, in a fixed random order."""
    pieces, start = [], 0
    while start < len(text):
        end = text.find(b"\n", start + PIECE_BYTES)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[start:end])
        start = end
    order = list(range(len(pieces)))
    rng = PIECE_ORDER_SEED  # a 64-bit LCG (Knuth's MMIX constants) for the Fisher-Yates draws: no
    for i in range(len(order) - 1, 0, -1):  # dependence on the random module's algorithm
        rng = (rng * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        j = (rng >> 33) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return b"".join(pieces[k] for k in order)


def write_shards(text, out_dir, val_fraction, source, cut=None):
    """Write NAME_train.bin and NAME_val.bin under out_dir (NAME = out_dir's
    basename); return True if either file had to be (re)written. Val is the
    bytes from cut on if given (then both are shuffled_pieces), else the last
    val_fraction of them."""
    name = os.path.basename(os.path.abspath(out_dir))
    train, val = split(text, val_fraction, source) if cut is None else (shuffled_pieces(text[:cut]), shuffled_pieces(text[cut:]))
    try:
        os.makedirs(out_dir, exist_ok=True)
        changed = False
        for part, data in (("train", train), ("val", val)):
            path = os.path.join(out_dir, "%s_%s.bin" % (name, part))
            changed |= write_if_changed(path, shard_bytes(data))
            print("  %-5s %s: %d tokens" % (part, path, len(data)))
    except OSError as e:
        raise Fail("--out %s: %s" % (out_dir, e.strerror))
    return changed


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- Debian packages

def fetch_package(package, workdir):
    """apt-get download the package into workdir (made if missing) and unpack it
    there; return the unpacked root and the .deb's name. apt-get's chatter is
    shown only when it fails."""
    os.makedirs(workdir, exist_ok=True)
    english = dict(os.environ, LC_ALL="C")  # apt's messages are matched below

    def run(*command):
        return subprocess.run(command, cwd=workdir, env=english,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def download():
        return run("apt-get", "download", package)

    try:
        result = download()
        if result.returncode != 0 and "Unable to locate package" in result.stdout:
            # A fresh machine (or container) often has no package lists yet.
            if os.geteuid() != 0:
                raise Fail("apt-get download %s: package lists lack it; run `sudo apt-get update` first"
                           % package)
            print("apt-get download %s: package lists lack it; running apt-get update" % package)
            update = run("apt-get", "update")
            if update.returncode != 0:
                raise Fail("apt-get update failed: %s" % last_line(update.stdout))
            result = download()
        if result.returncode != 0:
            raise Fail("apt-get download %s failed: %s" % (package, last_line(result.stdout)))
        debs = [f for f in os.listdir(workdir) if f.endswith(".deb")]
        print("fetched %s" % debs[0])
        root = os.path.join(workdir, "root")
        unpack = run("dpkg", "-x", debs[0], root)
        if unpack.returncode != 0:
            raise Fail("dpkg -x %s failed: %s" % (debs[0], last_line(unpack.stdout)))
    except FileNotFoundError as e:
        raise Fail("%s not found: --corpus needs a Debian-based machine; use --text FILE instead"
                   % e.filename)
    return root, debs[0]


def last_line(output):
    lines = output.strip().splitlines()
    return lines[-1] if lines else "(no output)"


# ---------------------------------------------------------------- R serialization (Jane Austen)
#
# janeaustenr keeps its data sets in an R lazy-load database: Rdata.rdx, a
# serialized list mapping each object name to (offset, length) in Rdata.rdb,
# where each record is a 4-byte big-endian length and a zlib stream of one
# serialized object. The reader below knows the XDR ('X') format and only the
# object types these files contain.

NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 0, 1, 2, 9, 10, 13, 14, 16, 19
NILVALUE_SXP, REFSXP = 254, 255
HAS_ATTR, HAS_TAG = 1 << 9, 1 << 10
LATIN1_LEVEL = 1 << 2
NA_INT = -2 ** 31


class RVector(list):
    """An R vector: its elements, plus its attributes (e.g. names) as a dict."""
    attributes = {}


class RReader:
    def __init__(self, data, source):
        self.data, self.pos, self.source = data, 0, source
        self.refs = []  # symbols, in order of first appearance; REFSXP points back into it

    def read(self):
        if self.take(2) != b"X\n":
            raise Fail("%s: not an R serialization in XDR format" % self.source)
        version = self.int()
        self.pos += 8  # R version that wrote it, oldest R version that can read it
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise Fail("%s: R serialization version %d, expected 2 or 3" % (self.source, version))
        return self.item()

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Fail("%s: R serialization ends early" % self.source)
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: the length follows as two 32-bit halves
            hi, lo = struct.unpack(">II", self.take(8))
            n = hi << 32 | lo
        return n

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        if kind in (NILVALUE_SXP, NILSXP):
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == LISTSXP:
            return self.pairlist(flags)
        if kind == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.take(n)
            return raw.decode("latin-1" if (flags >> 12) & LATIN1_LEVEL else "utf-8")
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            values = [None if v == NA_INT else v for v in struct.unpack(">%di" % n, self.take(4 * n))]
        elif kind == REALSXP:
            n = self.length()
            values = list(struct.unpack(">%dd" % n, self.take(8 * n)))
        elif kind in (STRSXP, VECSXP):
            values = [self.item() for _ in range(self.length())]
        else:
            raise Fail("%s: R object type %d is beyond this reader" % (self.source, kind))
        vector = RVector(values)
        if flags & HAS_ATTR:
            vector.attributes = self.item()
        return vector

    def pairlist(self, flags):
        """A pairlist (as attributes are stored) as a dict from tag to value."""
        result = {}
        while True:
            if flags & HAS_ATTR:
                self.item()  # a cons cell's own attributes: nothing we use
            tag = self.item() if flags & HAS_TAG else None
            result[tag] = self.item()
            flags = self.int()
            if flags & 0xFF != LISTSXP:
                self.pos -= 4  # the tail is not a cons cell: give the flags back
                tail = self.item()
                if tail is not None:
                    raise Fail("%s: improper pairlist" % self.source)
                return result


def lazyload_objects(rdx_path, rdb_path, names):
    """Read the named objects from an R lazy-load database."""
    with open(rdx_path, "rb") as f:
        raw = f.read()
    # R writes the index with saveRDS (gzip); older tools used length + zlib.
    index_bytes = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])
    index = RReader(index_bytes, rdx_path).read()
    if index.attributes.get("names") != ["variables", "references", "compressed"] or index[2] != [True]:
        raise Fail("%s: expected a zlib lazy-load index (variables, references, compressed=TRUE)" % rdx_path)
    variables = index[0]
    where = dict(zip(variables.attributes["names"], variables))
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    objects = {}
    for name in names:
        if name not in where:
            raise Fail("%s: no object %r (has %s)" % (rdx_path, name, ", ".join(sorted(where))))
        offset, length = where[name]
        record = rdb[offset:offset + length]
        try:
            payload = zlib.decompress(record[4:])
        except zlib.error as e:
            raise Fail("%s: object %r at offset %d: bad zlib stream: %s" % (rdb_path, name, offset, e))
        objects[name] = RReader(payload, "%s:%s" % (rdb_path, name)).read()
    return objects


AUSTEN_NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark",
                 "emma", "northangerabbey", "persuasion"]  # publication order


def austen_text(root):
    """The six novels in publication order: lines joined by '\\n', novels by '\\n\\n'."""
    data = os.path.join(root, "usr/lib/R/site-library/janeaustenr/data")
    rdb = os.path.join(data, "Rdata.rdb")
    novels = lazyload_objects(os.path.join(data, "Rdata.rdx"), rdb, AUSTEN_NOVELS)
    for name, lines in novels.items():
        if not (isinstance(lines, RVector) and all(isinstance(line, str) for line in lines)):
            raise Fail("%s: object %r is not a character vector without NAs" % (rdb, name))
    return "\n\n".join("\n".join(novels[name]) for name in AUSTEN_NOVELS).encode("utf-8"), rdb


# ---------------------------------------------------------------- compress(1) windows (King James Bible)
#
# bible-kjv-text ships the text as /usr/lib/bible.data: a header ("EC02",
# description, window size, window count, window start offsets, all big-endian)
# and then one Unix compress (LZW) stream per 64 KiB window of the plain text,
# so the `bible` program can decompress any verse without the rest.

def lzw_decompress(data, maxbits=16):
    """Decode one block-mode compress(1) stream without its 3-byte header."""
    CLEAR = 256
    table = [bytes([i]) for i in range(256)] + [b""]  # code 256 is CLEAR, never a string
    nbits, maxcode = 9, 511
    bitpos, group_start, total_bits = 0, 0, 8 * len(data)
    out, prev = bytearray(), None

    def next_group():
        # compress reads codes in groups of nbits bytes (8 codes); a change of
        # code width or a CLEAR drops the rest of the current group.
        nonlocal bitpos, group_start
        group_bits = 8 * nbits
        bitpos += -(bitpos - group_start) % group_bits
        group_start = bitpos

    while True:
        if len(table) > maxcode:
            next_group()
            nbits += 1
            maxcode = (1 << nbits) - 1 if nbits < maxbits else 1 << maxbits  # at maxbits: never widen again
        if bitpos + nbits > total_bits:
            return bytes(out)
        byte = bitpos >> 3
        code = (int.from_bytes(data[byte:byte + 3], "little") >> (bitpos & 7)) & ((1 << nbits) - 1)
        bitpos += nbits
        if code == CLEAR:
            next_group()
            nbits, maxcode = 9, 511
            del table[256:]  # the first code after CLEAR adds a dummy entry at 256
            continue
        if code < len(table):
            entry = table[code]
        elif code == len(table) and prev is not None:  # the code being defined right now
            entry = prev + prev[:1]
        else:
            raise ValueError("code %d beyond table of %d" % (code, len(table)))
        out += entry
        if prev is not None and len(table) < 1 << maxbits:
            table.append(prev + entry[:1])
        prev = entry


def kjv_text(root):
    path = os.path.join(root, "usr/lib/bible.data")
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"EC02":
        raise Fail("%s: magic %r, expected b'EC02'" % (path, data[:4]))
    wsize, wnum = struct.unpack(">ii", data[84:92])
    starts = struct.unpack(">%di" % (wnum + 1), data[92:96 + 4 * wnum])
    text = bytearray()
    for w in range(wnum):
        try:
            window = lzw_decompress(data[starts[w]:starts[w + 1]])
        except ValueError as e:
            raise Fail("%s: window %d: bad compressed data: %s" % (path, w, e))
        if len(window) != wsize and w != wnum - 1:
            raise Fail("%s: window %d decompressed to %d bytes, expected %d"
                       % (path, w, len(window), wsize))
        text += window
    return bytes(text), path


# ---------------------------------------------------------------- SWORD commentaries (books corpus)
#
# A SWORD zCom module keeps each testament in three files: NAME.Xzs, one
# (offset, size, uncompressed size) triple of little-endian uint32s per block;
# NAME.Xzz, the blocks, each a zlib stream; NAME.Xzv, one entry per verse slot
# of the KJV versification (headings included): block number, offset in the
# uncompressed block and size, as uint32, uint32 and uint16 (10-byte entries)
# or uint32 (12-byte; BOOKS says which, since a module's .conf may not: mhcc's
# names zCom4 over 10-byte entries). X is b (a block per book) or c (per
# chapter). Entries are read in verse order through the index, since a block
# may hold them in another order or keep a replaced one. The text is OSIS XML;
# osis_plain keeps its words.

def sword_entries(prefix, kind, entry_size):
    """The entries of one testament (empty if the module has none), in verse
    order, each once (verses that share an entry point at the same one)."""
    try:
        with open(prefix + ".%czs" % kind, "rb") as f:
            block_index = f.read()
        if not block_index:
            return []
        with open(prefix + ".%czz" % kind, "rb") as f:
            data = f.read()
        with open(prefix + ".%czv" % kind, "rb") as f:
            verse_index = f.read()
    except OSError as e:
        raise Fail("%s: %s" % (e.filename, e.strerror))
    if len(block_index) % 12 or len(verse_index) % entry_size:
        raise Fail("%s.%czs/.%czv: sizes %d and %d, expected multiples of 12 and %d"
                   % (prefix, kind, kind, len(block_index), len(verse_index), entry_size))
    blocks = []
    for i in range(0, len(block_index), 12):
        offset, size, usize = struct.unpack("<3I", block_index[i:i + 12])
        try:
            block = zlib.decompress(data[offset:offset + size])
        except zlib.error as e:
            raise Fail("%s.%czz: block %d: bad zlib stream: %s" % (prefix, kind, i // 12, e))
        if len(block) != usize:
            raise Fail("%s.%czz: block %d is %d bytes, index says %d" % (prefix, kind, i // 12, len(block), usize))
        blocks.append(block)
    layout = "<IIH" if entry_size == 10 else "<III"
    entries, seen = [], set()
    for i in range(0, len(verse_index), entry_size):
        block, offset, size = struct.unpack(layout, verse_index[i:i + entry_size])
        if size == 0 or (block, offset) in seen:
            continue
        seen.add((block, offset))
        if block >= len(blocks) or offset + size > len(blocks[block]):
            raise Fail("%s.%czv: entry %d points past block %d" % (prefix, kind, i // entry_size, block))
        entries.append(blocks[block][offset:offset + size])
    return entries


# Tags that end a line: paragraph and section divs, chapter marks, titles,
# list items, table rows, poetry lines. All other tags (hi, reference, cell,
# milestone, w) go, leaving their text; a cell ends with a space.
OSIS_BREAK = re.compile(r"<(?:/?(?:title|item|row|list|table|lg|l)\b|(?:div|chapter|lb)\b)[^>]*>")
OSIS_TAG = re.compile(r"<[^>]*>")


def osis_plain(entries, source):
    """One paragraph (title, list item, ...) a line, whitespace runs as one space."""
    lines = []
    for entry in entries:
        try:
            markup = entry.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Fail("%s: not UTF-8: %s" % (source, e))
        text = html.unescape(OSIS_TAG.sub("", OSIS_BREAK.sub("\n", markup).replace("</cell>", " ")))
        lines += [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(line for line in lines if line) + "\n"


def sword_commentary(module, kind, entry_size):
    def read(root):
        base = os.path.join(root, "usr/share/sword/modules/comments/zcom", module)
        entries = []
        for testament in ("ot", "nt"):
            entries += sword_entries(os.path.join(base, testament), kind, entry_size)
        return osis_plain(entries, base).encode("utf-8"), base
    return read


# ---------------------------------------------------------------- dictd databases (books corpus)
#
# NAME.dict.dz is gzip-compatible (dictzip); NAME.index has one line per
# headword: headword, offset and length of its entry in the .dict, the numbers
# in base 64 (A-Z a-z 0-9 + /, most significant digit first). Several
# headwords can share an entry; 00-database-* entries are dictfmt's metadata.

B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64_number(digits):
    n = 0
    for c in digits:
        n = 64 * n + B64[c]
    return n


def dictd(name):
    def read(root):
        base = os.path.join(root, "usr/share/dictd", name)
        try:
            with open(base + ".dict.dz", "rb") as f:
                data = gzip.decompress(f.read())
            with open(base + ".index", encoding="utf-8") as f:
                index = f.read().splitlines()
        except (OSError, EOFError, zlib.error) as e:
            raise Fail("%s.dict.dz: %s" % (base, getattr(e, "strerror", None) or e))
        spans = set()
        for line in index:
            fields = line.split("\t")
            if len(fields) < 3 or not all(c in B64 for c in fields[1] + fields[2]):
                raise Fail("%s.index: bad line %r" % (base, line))
            if not fields[0].startswith(("00database", "00-database")):
                spans.add((b64_number(fields[1]), b64_number(fields[2])))
        entries = [tidy(data[o:o + n], base + ".dict.dz").rstrip(b"\n") for o, n in sorted(spans)]
        return b"\n\n".join(entries) + b"\n", base + ".dict.dz"
    return read


# ---------------------------------------------------------------- plain texts (books corpus)

def tidy(raw, source):
    """UTF-8 text with \\n line ends, no byte-order mark, no trailing spaces,
    no blank lines at either end, ending with one \\n."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fail("%s: not UTF-8: %s" % (source, e))
    lines = [line.rstrip() for line in text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")]
    return ("\n".join(lines).strip("\n") + "\n").encode("utf-8")


GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*\n", re.M | re.I)
GUTENBERG_END = re.compile(r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg)", re.M | re.I)


def gutenberg_body(text):
    """The book without Project Gutenberg's header, footer and licence, and
    without a leading 'Produced by ...' paragraph."""
    start = GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = GUTENBERG_END.search(text)
    if end:
        text = text[:end.start()]
    text = text.strip("\n")
    if text.startswith("Produced by"):
        text = text[text.find("\n\n") + 2:] if "\n\n" in text else ""
    return text


def gutenberg_file(path):
    def read(root):
        full = os.path.join(root, path)
        try:
            with open(full, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise Fail("%s: %s" % (full, e.strerror))
        text = tidy(raw, full).decode("utf-8")
        return tidy(gutenberg_body(text).encode("utf-8"), full), full
    return read


def moby_dick(root):
    """tokenizers ships Moby-Dick as the R data set `mobydick`: one string."""
    data = os.path.join(root, "usr/lib/R/site-library/tokenizers/data")
    rdb = os.path.join(data, "Rdata.rdb")
    book = lazyload_objects(os.path.join(data, "Rdata.rdx"), rdb, ["mobydick"])["mobydick"]
    if not (isinstance(book, RVector) and len(book) == 1 and isinstance(book[0], str)):
        raise Fail("%s: object 'mobydick' is not one string" % rdb)
    text = tidy(book[0].encode("utf-8"), rdb).decode("utf-8")
    return tidy(gutenberg_body(text).encode("utf-8"), rdb), rdb


def with_newline(reader):
    """The austen and kjv readers' text, ending with a line break."""
    def read(root):
        text, source = reader(root)
        return (text if text.endswith(b"\n") else text + b"\n"), source
    return read


# ---------------------------------------------------------------- corpora

LZ4_TESTDATA = "usr/share/gocode/src/github.com/pierrec/lz4/testdata/"

# The books corpus: public-domain works from Debian packages, in this order in
# books.txt with a blank line between works. The val works come last, so the
# train split is everything before the first of them: no work is in both.
# (name, package, reader, bytes, sha256 of the work's text, split); see data/README.md.
BOOKS = [
    ("austen", "r-cran-janeaustenr", with_newline(austen_text), 4025034,
     "887d811d970b962381ef54f0d0dde7d14e7ce7aa2c85fdef0a8a97a47e4390d0", "train"),
    ("kjv", "bible-kjv-text", with_newline(kjv_text), 4404475,
     "e53aaf0af1e58f259e35d0d9f7ca1bbe154fd77bb95471279b37b34d3c397a98", "train"),
    ("treasury-of-david", "sword-comm-tdavid", sword_commentary("tdavid", "c", 12), 11786689,
     "ab3fcf48b82d59fa2d65ffdacd3ded8f47abdf084df47722446a5c277772ae6a", "train"),
    ("henry-concise", "sword-comm-mhcc", sword_commentary("mhcc", "b", 10), 3931315,
     "9b33e1db6d57d15e4396876cdde15fda076ab1f2c29417329b1811f92fa5bb2c", "train"),
    ("moby-dick", "r-cran-tokenizers", moby_dick, 1215776,
     "0a4f9d0a1e6faae432487248d0ae84221f1cd26f47a11bdf029314669a7bfc28", "train"),
    ("opticks", "golang-github-andybalholm-brotli-dev",
     gutenberg_file("usr/share/gocode/src/github.com/andybalholm/brotli/testdata/Isaac.Newton-Opticks.txt"), 567061,
     "e37ca1e6a0a1e1851a461839ffff591f967c9cea6e40b2be2e54a9db1a87ed63", "train"),
    ("jargon-file", "dict-jargon", dictd("jargon"), 1417266,
     "6c36211325c42e06fbac212540ea809e0a89c95e7c0682ea9f68396777aa431f", "train"),
    ("scofield-notes", "sword-comm-scofield", sword_commentary("scofield", "b", 10), 776055,
     "08e40f7610c900f9fdf4b8439a5bfe14e1cd6227891d0db34161beb50a7a1721", "train"),
    ("tom-sawyer", "golang-github-pierrec-lz4-dev", gutenberg_file(LZ4_TESTDATA + "Mark.Twain-Tom.Sawyer.txt"), 387769,
     "22cd2fa4bc0f686b649ad6c4baf9ecf85eefaab8d619fa558363c687cc66e0dd", "val"),
    ("devils-dictionary", "dict-devil", dictd("devil"), 380595,
     "495c57d6804c48aafb66a3f8e923efc4d6add2cbd55ae4256938f430743cedaa", "val"),
    ("sherlock-holmes", "golang-github-pierrec-lz4-dev", gutenberg_file(LZ4_TESTDATA + "pg1661.txt"), 562346,
     "efc28bcd78eb3e5a903117fb117819208c6745849ea4862ad7e6ed6b216aa69d", "val"),
]
BOOKS_PACKAGES = tuple(dict.fromkeys(package for _, package, *_ in BOOKS))
BOOKS_TRAIN_BYTES = sum(size + 1 for _, _, _, size, _, split in BOOKS if split == "train")


def books_text(roots):
    """Read every work, check it against its pin, and join them."""
    works = []
    for name, package, reader, size, pinned, split in BOOKS:
        root, deb = roots[package]
        text, source = reader(root)
        source = "%s:/%s" % (deb, os.path.relpath(source, root))
        if len(text) != size or sha256(text) != pinned:
            raise Fail("books: work %s from %s has %d bytes, sha256 %s; expected %d bytes, sha256 %s; nothing written"
                       % (name, source, len(text), sha256(text), size, pinned))
        print("  %-5s %-18s %9d bytes  %s" % (split, name, size, source))
        works.append(text)
    return b"\n".join(works), "the %d works of %d packages" % (len(BOOKS), len(BOOKS_PACKAGES))


def from_package(package, reader):
    """A corpus that is one package's text."""
    def extract(roots):
        root, deb = roots[package]
        text, source = reader(root)
        return text, "%s:/%s" % (deb, os.path.relpath(source, root))
    return extract


# name: (Debian packages, function turning the unpacked packages into text and a
# description of where it came from, sha256 of that text, train bytes or None for
# a cut at --val-fraction). The pins catch a changed package or a reader bug
# before any shard is written.
CORPORA = {
    "austen": (("r-cran-janeaustenr",), from_package("r-cran-janeaustenr", austen_text),
               "7f77b3747b535329741d65eafa6742c714087743969518a1a5e15a7afe058272", None),
    "kjv": (("bible-kjv-text",), from_package("bible-kjv-text", kjv_text),
            "e53aaf0af1e58f259e35d0d9f7ca1bbe154fd77bb95471279b37b34d3c397a98", None),
    "books": (BOOKS_PACKAGES, books_text,
              "5966d62ac3c84eb2ce73bc2025c562ebbb9c60d4b4cdd0072d86941936f9fb3a", BOOKS_TRAIN_BYTES),
}
DEFAULT_VAL_FRACTION = 0.05


def prepare_corpus(name, out_dir, val_fraction):
    packages, extract, pinned, cut = CORPORA[name]
    if cut is not None and val_fraction is not None:
        raise Fail("--val-fraction: the %s corpus has a fixed split by work (see data/README.md)" % name)
    out_dir = out_dir or os.path.join(DATA_DIR, name)
    base = os.path.basename(os.path.abspath(out_dir))
    txt_path = os.path.join(out_dir, base + ".txt")
    try:
        with open(txt_path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    if text is not None and sha256(text) == pinned:
        fetched = False
    else:
        if text is not None:
            print("%s: checksum differs from the pinned one; rebuilding it" % txt_path)
        with tempfile.TemporaryDirectory(prefix="prepare-") as work:
            roots = {package: fetch_package(package, os.path.join(work, package)) for package in packages}
            text, source = extract(roots)
        if sha256(text) != pinned:
            raise Fail("%s gave text with sha256 %s, expected %s; not writing %s"
                       % (source, sha256(text), pinned, txt_path))
        try:
            os.makedirs(out_dir, exist_ok=True)
            with open(txt_path, "wb") as f:
                f.write(text)
        except OSError as e:
            raise Fail("%s: %s" % (txt_path, e.strerror))
        fetched = True
    print("%s: %d bytes, sha256 %s (matches the pinned checksum)" % (txt_path, len(text), pinned))
    changed = write_shards(text, out_dir, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction,
                           txt_path, cut)
    if not fetched and not changed:
        print("%s: already up to date, nothing to do" % out_dir)


def prepare_text(paths, out_dir, val_fraction):
    parts = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            raise Fail("--text %s: %s" % (path, e.strerror))
        if not content:
            raise Fail("--text %s: file is empty" % path)
        parts.append(content)
    text = b"\n\n".join(parts)
    print("%s: %d bytes, sha256 %s" % (", ".join(paths), len(text), sha256(text)))
    write_shards(text, out_dir, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction, ", ".join(paths))


# ---------------------------------------------------------------- command line

class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage dump is not one line
        raise Fail(message)


def main(argv):
    parser = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--corpus", help="Debian-packaged corpus: %s (default books)" % ", ".join(CORPORA))
    what.add_argument("--text", nargs="+", metavar="FILE", help="local text files, joined with blank lines")
    what.add_argument("--decode", metavar="SHARD", help="print a byte-level shard as text")
    what.add_argument("--check", metavar="SHARD", help="validate a shard and print its token count")
    parser.add_argument("--out", metavar="DIR", help="output directory; files are named after its basename")
    parser.add_argument("--val-fraction", type=float, metavar="F",
                        help="share of the bytes for val (default %g; not for books, split by work)"
                        % DEFAULT_VAL_FRACTION)
    parser.add_argument("--max", type=int, metavar="N", help="with --decode: only the first N tokens")
    args = parser.parse_args(argv)

    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise Fail("--val-fraction %g: expected a number between 0 and 1" % args.val_fraction)
    if args.max is not None and (args.decode is None or args.max < 0):
        raise Fail("--max N: expected with --decode and N >= 0")
    if args.check:
        check(args.check)
    elif args.decode:
        decode(args.decode, args.max)
    elif args.text:
        if not args.out:
            raise Fail("--text needs --out DIR")
        prepare_text(args.text, args.out, args.val_fraction)
    else:
        corpus = args.corpus or "books"
        if corpus not in CORPORA:
            raise Fail("--corpus %s: unknown, expected one of %s" % (corpus, ", ".join(CORPORA)))
        prepare_corpus(corpus, args.out, args.val_fraction)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Fail as e:
        print("%s: %s" % (PROG, e), file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # e.g. `--decode F.bin | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
