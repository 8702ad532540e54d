/* test_chars.c - UTF-8 encoding and hex digits. */
#include "chars.h"
#include "tap.h"

int main(void)
{
    char b[4];
    is_mem(b, chars_utf8_put(b, 'A'), "A", 1, "ASCII");
    is_mem(b, chars_utf8_put(b, 0xE9), "\xc3\xa9", 2, "U+00E9 in two bytes");
    is_mem(b, chars_utf8_put(b, 0x7FF), "\xdf\xbf", 2, "U+07FF, last of two bytes");
    is_mem(b, chars_utf8_put(b, 0x800), "\xe0\xa0\x80", 3, "U+0800, first of three");
    is_mem(b, chars_utf8_put(b, 0x20AC), "\xe2\x82\xac", 3, "euro sign");
    is_mem(b, chars_utf8_put(b, 0x1F600), "\xf0\x9f\x98\x80", 4, "U+1F600 in four bytes");
    is_mem(b, chars_utf8_put(b, 0x10FFFF), "\xf4\x8f\xbf\xbf", 4, "U+10FFFF");
    is_int(chars_hex_value('0'), 0, "0");
    is_int(chars_hex_value('9'), 9, "9");
    is_int(chars_hex_value('a'), 10, "a");
    is_int(chars_hex_value('F'), 15, "F");
    is_int(chars_hex_value('g'), -1, "g is not hex");
    is_int(chars_hex_value(':'), -1, ": is not hex");
    return tap_done();
}
