// SPDX-License-Identifier: GPL-2.0
// RTTI: typeinfo objects derive from libsupc++'s __cxxabiv1 classes (their
// vtables are undefined in the kernel) and dynamic_cast calls __dynamic_cast.
// flags: -frtti
// expect: check-cxx-object: .*/rtti\.o: defines typeinfo \(RTTI\): .*_ZTI
// expect: check-cxx-object: .*/rtti\.o: references the C\+\+ runtime: .*__dynamic_cast
namespace std {
class type_info; // <typeinfo> is not reachable with -nostdinc++; typeid needs only this.
}

struct Shape {
	virtual ~Shape() = default;
	virtual int sides() const { return 0; }
};

struct Square : Shape {
	int sides() const override { return 4; }
};

int dmxx_bad_is_square(const Shape *s)
{
	return dynamic_cast<const Square *>(s) != nullptr;
}

// typeid of a type (not of a dereferenced pointer, whose null check would end
// in a call to __cxa_bad_typeid that objtool reports first).
const void *dmxx_bad_type_of_square()
{
	return &typeid(Square);
}
