"""422 errors are field → list of messages, whatever shape the validator reported."""

from taskservice.api.problems import flatten_errors, validation_problem


def test_nested_messages_flatten_to_dotted_paths():
    assert flatten_errors({"tasks": {3: {"name": ["Missing."], "payload": {"k": {"value": ["Bad."]}}},
                                     0: {"_schema": ["Invalid input type."]}},
                           "status": {0: ["Must be one of: NEW."]}, "page": ["Too small.", "Not even."]}) == {
        "tasks.3.name": ["Missing."], "tasks.3.payload.k.value": ["Bad."], "tasks.0._schema": ["Invalid input type."],
        "status.0": ["Must be one of: NEW."], "page": ["Too small.", "Not even."]}
    assert flatten_errors(["Invalid input type."]) == {"_schema": ["Invalid input type."]}


def test_the_detail_names_every_field():
    problem = validation_problem({"json": {"name": ["Missing data for required field."]},
                                  "status": {1: ["Must be one of: NEW."]}})
    assert problem.status == 422
    assert problem.errors == {"json.name": ["Missing data for required field."], "status.1": ["Must be one of: NEW."]}
    assert problem.detail == ("Invalid request. json.name: Missing data for required field.; "
                              "status.1: Must be one of: NEW.")
