# Runs at install time (cmake --install), so that the unit names the binary where it was installed: the prefix
# given to `cmake --install --prefix` is known only then. DESTDIR (a package's staging root) is not part of it.
#   LB_UNIT_TEMPLATE, LB_UNIT_DIR, LB_BIN_DIR, LB_DOC_DIR_REL, LB_EXAMPLES_DIR_REL: set by install(CODE) in the
#   top-level CMakeLists.txt; relative directories are under CMAKE_INSTALL_PREFIX.
foreach(var LB_UNIT_DIR LB_BIN_DIR LB_DOC_DIR_REL LB_EXAMPLES_DIR_REL)
  if(IS_ABSOLUTE "${${var}}")
    set(${var}_FULL "${${var}}")
  else()
    set(${var}_FULL "${CMAKE_INSTALL_PREFIX}/${${var}}")
  endif()
endforeach()
set(LB_BINARY "${LB_BIN_DIR_FULL}/lb")
set(LB_DOC_DIR "${LB_DOC_DIR_REL_FULL}")
set(LB_EXAMPLES_DIR "${LB_EXAMPLES_DIR_REL_FULL}")
set(unit "$ENV{DESTDIR}${LB_UNIT_DIR_FULL}/lb.service")
message(STATUS "Installing: ${unit}")
configure_file("${LB_UNIT_TEMPLATE}" "${unit}" @ONLY)
