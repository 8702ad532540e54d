import os
import subprocess

ACCOUNTS = {'main': 'alice'}
EXCLUDE = ('Trash', 'Junk', 'Old Stuff')


def get_user(account):
    return ACCOUNTS[account]


def get_password(account):
    path = os.path.expanduser('~/.passwords/%s.txt' % ACCOUNTS[account])
    return subprocess.check_output(['cat', path]).decode().rstrip('\n')


def is_wanted(folder):
    return folder not in EXCLUDE and not folder.startswith(('Lists', 'Brouillons'))


def local_name(folder):
    return folder.lower().replace(' ', '-')


def remote_name(folder):
    return {'inbox': 'INBOX'}.get(folder, folder.title())
