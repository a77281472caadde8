/**
 * The msgpack feed's shared structures (docs/protocol.md): the record field lists both ends of
 * `/ws` know in advance, and the encoder and decoder built on them. Here, in the shared layer, so
 * that every thread that encodes feed frames (the gateway, the analytics workers) writes the same
 * bytes; src/gateway/messages.ts documents what each record means.
 */
import { Packr, Unpackr } from 'msgpackr';

const LTP_KEYS = ['t', 's', 'p', 'ts'];
const QUOTE_KEYS = [...LTP_KEYS, 'q', 'ap', 'v', 'dv', 'bq', 'sq', 'o', 'h', 'l', 'c', 'ch'];
const FULL_KEYS = [...QUOTE_KEYS, 'oi', 'ohi', 'olo', 'ltt', 'dvw', 'bid', 'ask', 'rt'];
const BAR_KEYS = ['t', 's', 'tf', 'st', 'o', 'h', 'l', 'c', 'v', 'vw', 'n', 'oi', 'x', 'pt'];

/** The shared structures, in order. Changing them is a protocol version change. */
/** The data-frame wrapper `{ type, d }`: shared too, so a frame does not define it inline each time. */
const FRAME_KEYS = ['type', 'd'];
export const STRUCTURES: readonly (readonly string[])[] = [LTP_KEYS, QUOTE_KEYS, FULL_KEYS, BAR_KEYS, FRAME_KEYS];
export const PROTOCOL_VERSION = 1;

function packrOptions() {
  return {
    structures: STRUCTURES.map((s) => [...s]),
    maxSharedStructures: STRUCTURES.length,
    // Fixed protocol: never learn or share new structures at run time.
    shouldShareStructure: () => false,
    saveStructures: () => false,
  };
}

/** Encoder for data frames. One per process: it reuses one target buffer (msgpackr's own). */
export function createPackr(records: boolean): Packr {
  return records ? new Packr(packrOptions()) : new Packr({ useRecords: false });
}

/** Decoder matching `createPackr(true)`; the client uses the same. */
export function createUnpackr(): Unpackr {
  return new Unpackr(packrOptions());
}
