#! /usr/bin/env python3
from subprocess import check_output


def mailpasswd(acct):
    return check_output("cat ~/.mailpass-" + acct, shell=True).strip(b"\n")
