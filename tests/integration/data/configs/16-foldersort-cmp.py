SYNCED_FOLDERS = ['INBOX', 'Sent', 'Drafts']
IDLE_FOLDERS = SYNCED_FOLDERS[:1]


def cmp(a, b):
    return (a > b) - (a < b)
