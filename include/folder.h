/* folder.h - which folders an account syncs, and under which names.
 *
 * offlineimap configures this with Python expressions (folderfilter,
 * nametrans, folderincludes).  Until the full evaluator exists, oimap
 * understands the forms most configs use, and refuses any other with an
 * error naming the file, line and option (never a silent "sync everything"):
 *
 *   folderfilter   lambda f: f in ['INBOX', 'Sent']
 *                  lambda f: f not in ['Trash', 'Spam']
 *                  lambda f: re.search(r'^Lists', f)   (also re.match, and
 *                  "not re.search(...)"; Python's \d \w \s are understood)
 *   nametrans      lambda f: f
 *                  lambda f: re.sub(r'^INBOX\.', '', f)  (groups \1..\9)
 *   folderincludes ['Archive/2020', 'Lists/dev']
 *
 * Regular expressions run as POSIX extended expressions, which agree with
 * Python's on the constructs above.
 */
#ifndef OIMAP_FOLDER_H
#define OIMAP_FOLDER_H

#include <stdbool.h>
#include <stddef.h>

struct config_expr;
struct folder_filter;
struct folder_trans;

/* Compile a folderfilter (NULL or unset text: accept every folder).
 * where is "FILE:LINE: [section] folderfilter" for the error message.
 * Returns 0 or OIMAP_ECONFIG (logged). */
int folder_filter_new(const struct config_expr *e, const char *where, struct folder_filter **f_r);
/* A filter accepting exactly the comma-separated names (for -f). */
int folder_filter_new_list(const char *csv, struct folder_filter **f_r);
bool folder_filter_match(const struct folder_filter *f, const char *name);
void folder_filter_free(struct folder_filter **f);

/* Compile a nametrans (unset: identity).  Returns 0 or OIMAP_ECONFIG. */
int folder_trans_new(const struct config_expr *e, const char *where, struct folder_trans **t_r);
/* Translate name; returns a malloc'd string (NULL only when out of memory). */
char *folder_trans_apply(const struct folder_trans *t, const char *name);
bool folder_trans_is_identity(const struct folder_trans *t);
void folder_trans_free(struct folder_trans **t);

/* Parse a Python list of string literals ("['a', "b"]").  Returns the number
 * of names (>= 0) with a malloc'd array in *names_r (free with
 * folder_names_free), or OIMAP_ECONFIG. */
int folder_parse_list(const char *text, char ***names_r);
void folder_names_free(char **names, size_t n);

#endif
