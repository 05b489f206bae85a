#include "demo/demo_backend.h"

int main(int argc, char** argv) { return lb::demo::demo_backend_main(argc, argv); }
