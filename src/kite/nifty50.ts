/**
 * The NIFTY 50 constituents we ship: what the default universe follows and what the simulator
 * trades.
 *
 * Composition as of late 2025 (after the September 2025 rebalance: INDIGO and MAXHEALTH in,
 * HEROMOTOCO and INDUSINDBK out; TATAMOTORS trades as TMPV after the October 2025 demerger).
 * NSE rebalances the index twice a year, so this list is data, not law: the live service matches
 * these symbols in Kite's instrument master and reports the ones it cannot find instead of failing.
 *
 * `token` is the Kite NSE instrument token (segment byte `token & 0xff` = 1, NSE cash) and
 * `exchangeToken` = `token >> 8`. `level` is an approximate price in rupees around late 2025; the
 * simulator starts its random walk there. It is not a quote.
 */

export interface Constituent {
  readonly symbol: string;
  readonly name: string;
  readonly token: number;
  /** Approximate price in rupees, late 2025. */
  readonly level: number;
}

/** Kite token of the NIFTY 50 index (segment 9, indices). */
export const NIFTY_INDEX_TOKEN = 256265;
export const NIFTY_INDEX_SYMBOL = 'NIFTY 50';
/** The `name` column Kite gives NIFTY futures and options. */
export const NIFTY_DERIVATIVE_NAME = 'NIFTY';
/** Approximate NIFTY 50 level, late 2025. */
export const NIFTY_INDEX_LEVEL = 26000;

export const NIFTY50: readonly Constituent[] = Object.freeze([
  { symbol: 'ADANIENT', name: 'ADANI ENTERPRISES', token: 6401, level: 2400 },
  { symbol: 'ADANIPORTS', name: 'ADANI PORT & SEZ', token: 3861249, level: 1480 },
  { symbol: 'APOLLOHOSP', name: 'APOLLO HOSPITALS', token: 40193, level: 7400 },
  { symbol: 'ASIANPAINT', name: 'ASIAN PAINTS', token: 60417, level: 2850 },
  { symbol: 'AXISBANK', name: 'AXIS BANK', token: 1510401, level: 1270 },
  { symbol: 'BAJAJ-AUTO', name: 'BAJAJ AUTO', token: 4267265, level: 9000 },
  { symbol: 'BAJFINANCE', name: 'BAJAJ FINANCE', token: 81153, level: 1020 },
  { symbol: 'BAJAJFINSV', name: 'BAJAJ FINSERV', token: 4268801, level: 2050 },
  { symbol: 'BEL', name: 'BHARAT ELECTRONICS', token: 98049, level: 410 },
  { symbol: 'BHARTIARTL', name: 'BHARTI AIRTEL', token: 2714625, level: 2100 },
  { symbol: 'CIPLA', name: 'CIPLA', token: 177665, level: 1520 },
  { symbol: 'COALINDIA', name: 'COAL INDIA', token: 5215745, level: 380 },
  { symbol: 'DRREDDY', name: 'DR. REDDY S LABORATORIES', token: 225537, level: 1250 },
  { symbol: 'EICHERMOT', name: 'EICHER MOTORS', token: 232961, level: 7000 },
  { symbol: 'ETERNAL', name: 'ETERNAL', token: 1304833, level: 300 },
  { symbol: 'GRASIM', name: 'GRASIM INDUSTRIES', token: 315393, level: 2750 },
  { symbol: 'HCLTECH', name: 'HCL TECHNOLOGIES', token: 1850625, level: 1600 },
  { symbol: 'HDFCBANK', name: 'HDFC BANK', token: 341249, level: 1000 },
  { symbol: 'HDFCLIFE', name: 'HDFC LIFE INS CO', token: 119553, level: 760 },
  { symbol: 'HINDALCO', name: 'HINDALCO INDUSTRIES', token: 348929, level: 800 },
  { symbol: 'HINDUNILVR', name: 'HINDUSTAN UNILEVER', token: 356865, level: 2450 },
  { symbol: 'ICICIBANK', name: 'ICICI BANK', token: 1270529, level: 1390 },
  { symbol: 'INDIGO', name: 'INTERGLOBE AVIATION', token: 2865921, level: 5800 },
  { symbol: 'INFY', name: 'INFOSYS', token: 408065, level: 1550 },
  { symbol: 'ITC', name: 'ITC', token: 424961, level: 405 },
  { symbol: 'JIOFIN', name: 'JIO FIN SERVICES', token: 4644609, level: 305 },
  { symbol: 'JSWSTEEL', name: 'JSW STEEL', token: 3001089, level: 1150 },
  { symbol: 'KOTAKBANK', name: 'KOTAK MAHINDRA BANK', token: 492033, level: 2100 },
  { symbol: 'LT', name: 'LARSEN & TOUBRO', token: 2939649, level: 4000 },
  { symbol: 'M&M', name: 'MAHINDRA & MAHINDRA', token: 519937, level: 3700 },
  { symbol: 'MARUTI', name: 'MARUTI SUZUKI INDIA', token: 2815745, level: 16000 },
  { symbol: 'MAXHEALTH', name: 'MAX HEALTHCARE INS', token: 5728513, level: 1100 },
  { symbol: 'NESTLEIND', name: 'NESTLE INDIA', token: 4598529, level: 1250 },
  { symbol: 'NTPC', name: 'NTPC', token: 2977281, level: 330 },
  { symbol: 'ONGC', name: 'OIL AND NATURAL GAS CORP.', token: 633601, level: 245 },
  { symbol: 'POWERGRID', name: 'POWER GRID CORP.', token: 3834113, level: 270 },
  { symbol: 'RELIANCE', name: 'RELIANCE INDUSTRIES', token: 738561, level: 1550 },
  { symbol: 'SBILIFE', name: 'SBI LIFE INSURANCE CO', token: 5582849, level: 2000 },
  { symbol: 'SBIN', name: 'STATE BANK OF INDIA', token: 779521, level: 960 },
  { symbol: 'SHRIRAMFIN', name: 'SHRIRAM FINANCE', token: 1102337, level: 800 },
  { symbol: 'SUNPHARMA', name: 'SUN PHARMACEUTICAL IND.', token: 857857, level: 1800 },
  { symbol: 'TATACONSUM', name: 'TATA CONSUMER PRODUCTS', token: 878593, level: 1150 },
  { symbol: 'TMPV', name: 'TATA MOTORS PASS VEH', token: 884737, level: 400 },
  { symbol: 'TATASTEEL', name: 'TATA STEEL', token: 895745, level: 170 },
  { symbol: 'TCS', name: 'TATA CONSULTANCY SERV', token: 2953217, level: 3150 },
  { symbol: 'TECHM', name: 'TECH MAHINDRA', token: 3465729, level: 1500 },
  { symbol: 'TITAN', name: 'TITAN COMPANY', token: 897537, level: 3850 },
  { symbol: 'TRENT', name: 'TRENT', token: 502785, level: 4300 },
  { symbol: 'ULTRACEMCO', name: 'ULTRATECH CEMENT', token: 2952193, level: 11800 },
  { symbol: 'WIPRO', name: 'WIPRO', token: 969473, level: 250 },
].map((c) => Object.freeze(c)));

/** The constituent symbols, in the order above. */
export const NIFTY50_SYMBOLS: readonly string[] = Object.freeze(NIFTY50.map((c) => c.symbol));
