/* chars.h - character helpers shared by the parsers.
 *
 * Pure functions over single characters; no allocation, no state.
 */
#ifndef OIMAP_CHARS_H
#define OIMAP_CHARS_H

#include <stddef.h>
#include <stdint.h>

/* Write code point cp (<= 0x10FFFF) as UTF-8 into out (room for 4 bytes).
 * Returns the number of bytes written (1 to 4).  The caller has checked
 * that cp is a valid scalar value where that matters. */
size_t chars_utf8_put(char *out, uint32_t cp);

/* The value of hexadecimal digit c (either case), or -1. */
int chars_hex_value(int c);

#endif
