#include <stdio.h>
int main(void) { puts("oimap"); return 0; }
