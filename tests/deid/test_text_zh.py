"""Chinese detection without known identifiers (issue 12): names without a cue word, addresses without a
province, places (LOCATION), phones, IDs and dates in Chinese formats, and precision guards on ordinary
clinical Chinese."""

from __future__ import annotations

import pytest

from medspace.deid import text as T
from medspace.deid import text_zh as Z


def _found(note: str, value: str, phi_type: str) -> None:
    spans = T.detect(note, "zh")
    start = note.index(value)
    covering = [s for s in spans if s.start <= start and start + len(value) <= s.end]
    assert covering, (value, spans)
    assert covering[0].type == phi_type, (value, covering)


# --- names without a cue word ---


@pytest.mark.parametrize(("note", "name"), [
    ("张伟因胸痛2小时入院。", "张伟"),
    ("由李明签字确认。", "李明"),
    ("与刘洋沟通病情，家属表示理解。", "刘洋"),
    ("已通知王建国，其表示同意手术。", "王建国"),
    ("黄晓明，45岁，既往体健。", "黄晓明"),
    ("欧阳娜娜诉头晕3天。", "欧阳娜娜"),
])
def test_a_name_without_a_cue_word(note: str, name: str) -> None:
    _found(note, name, "NAME")


def test_the_cue_rules_no_longer_misread_words() -> None:
    # 女儿 is no cue inside 妇女儿童; 位 in 各位 is no surname before 同志.
    assert T.scrub("妇女儿童频道播出。", "zh") == "妇女儿童频道播出。"
    assert T.scrub("各位同志：", "zh") == "各位同志："


# --- addresses and places ---


@pytest.mark.parametrize(("note", "value", "phi_type"), [
    ("患者家住朝阳区建国路 868号。", "朝阳区建国路 868号", "ADDRESS"),
    ("住址：幸福小区3栋2单元501室。", "幸福小区3栋2单元501室", "ADDRESS"),
    ("患者来自杭州市，现住西湖区。", "杭州市", "LOCATION"),
    ("患者来自杭州市，现住西湖区。", "西湖区", "LOCATION"),
    ("在杭州务工多年。", "杭州", "LOCATION"),
    ("原籍四川忠县。", "忠县", "LOCATION"),
    ("来自白马镇李家村。", "白马镇", "LOCATION"),
    ("来自白马镇李家村。", "李家村", "LOCATION"),
    ("家住李家村3组。", "李家村3组", "LOCATION"),
])
def test_addresses_without_a_province_and_places(note: str, value: str, phi_type: str) -> None:
    _found(note, value, phi_type)


def test_a_hospital_name_keeps_its_name_but_not_its_place() -> None:
    # Policy: a hospital's name is not PHI, the city or district it reveals is (smaller than a province).
    assert T.scrub("转入杭州市第一人民医院治疗。", "zh") == "转入[LOCATION]第一人民医院治疗。"
    assert T.scrub("转入我院心内科。", "zh") == "转入我院心内科。"


def test_a_province_alone_is_no_phi() -> None:
    assert T.scrub("患者为浙江人。", "zh") == "患者为浙江人。"


# --- phones, IDs, dates ---


@pytest.mark.parametrize(("note", "value", "phi_type"), [
    ("客服电话400-820-8820。", "400-820-8820", "PHONE"),
    ("或拨4008208820。", "4008208820", "PHONE"),
    ("座机010 6512 3456。", "010 6512 3456", "PHONE"),
    ("座机0571-87654321。", "0571-87654321", "PHONE"),
    ("电话：(0571)8765 4321", "(0571)8765 4321", "PHONE"),
    ("手机：+86 138-0013-8000", "+86 138-0013-8000", "PHONE"),
    ("身份证号：11010519491231002X", "11010519491231002X", "ID"),
    ("医保卡号：YB440106198800", "YB440106198800", "ID"),
    ("病案号：12345", "12345", "MRN"),
    ("住院号:ZY20230017", "ZY20230017", "MRN"),
    ("入院日期：2023-05-17 08:30", "2023-05-17", "DATE"),
    ("出院日期：2023.05.17", "2023.05.17", "DATE"),
    ("2023/5/17复查", "2023/5/17", "DATE"),
    ("2023年05月17日", "2023年05月17日", "DATE"),
    ("于5月17日出院", "5月17日", "DATE"),
    ("二〇二三年五月十七日", "二〇二三年五月十七日", "DATE"),
    ("2023年5月起病", "2023年5月", "DATE"),
])
def test_phones_ids_and_dates_in_chinese_formats(note: str, value: str, phi_type: str) -> None:
    _found(note, value, phi_type)


# --- precision: ordinary clinical Chinese is left alone ---

CLEAN_ZH = [
    "主诉：反复胸闷、气促3年，加重1周。",
    "现病史：患者3年前无明显诱因出现胸闷，伴气促，休息后可缓解。",
    "既往史：高血压病史10年，糖尿病史5年，否认冠心病史。",
    "陈旧性心肌梗死，左侧肢体无力，右侧巴氏征阳性。",
    "予阿司匹林肠溶片100mg口服，阿莫西林胶囊0.5g每日三次，石膏固定。",
    "诊断：高脂血症、黄疸待查、周期性麻痹、金黄色葡萄球菌感染。",
    "心内科、神经内科、普外科、康复科会诊，建议方可出院。",
    "麻醉满意，术中出血约50ml，予镇静、镇痛治疗。",
    "患者为农村户口，参加城乡居民医保。",
    "血常规：白细胞计数12.3×10^9/L，中性粒细胞百分比85%。",
    "查体：神志清，精神可，双肺呼吸音粗，未闻及干湿性啰音，心率80次/分。",
    "病程中患者精神、饮食、睡眠尚可，大小便正常，体重无明显变化。",
    "嘱患者低盐低脂饮食，规律服药，定期复查，不适随诊。",
    "妇女儿童医院会诊意见：继续目前治疗方案。",
]


@pytest.mark.parametrize("note", CLEAN_ZH)
def test_ordinary_clinical_chinese_is_unchanged(note: str) -> None:
    assert T.scrub(note, "zh") == note


# --- full-width forms, dates without a year, places that are also words, names in reports (issue 12, H3) ---


@pytest.mark.parametrize(("note", "value", "phi_type"), [
    ("新华社北京１２月３１日电", "１２月３１日", "DATE"),  # full-width digits: same offsets, ASCII matching
    ("手机：１３８００１３８０００", "１３８００１３８０００", "PHONE"),
    ("１９９８年元月１日２０时", "１９９８年元月１日", "DATE"),
    ("１２月２７日至３１日，温家宝", "３１日", "DATE"),
    ("恩佐３０日在这里举行记者招待会", "３０日", "DATE"),
    ("以色列政府决定自一日起开放市场", "一日", "DATE"),
    ("去年１０月底，他重新拿起笔", "１０月", "DATE"),
    ("于3日出院", "3日", "DATE"),
])
def test_full_width_forms_and_dates_without_a_year(note: str, value: str, phi_type: str) -> None:
    _found(note, value, phi_type)


@pytest.mark.parametrize("note", [
    "术后3日复查血常规。", "3日后复查。", "病史3月余。", "孕3月。", "3月龄患儿。", "阿莫西林一日三次。",
    "腹泻3日，发热2日。", "第2日体温正常。",
])
def test_durations_and_counts_are_no_dates(note: str) -> None:
    assert T.scrub(note, "zh") == note


@pytest.mark.parametrize(("note", "value"), [
    ("来自大连的旅客", "大连"),  # a city that jieba also lists as another word: after 来自
    ("江西兴国县", "兴国县"),
    ("安徽省合肥市长江路悬挂灯笼", "合肥市长江路"),  # a street of a listed place
    ("这对夫妇是该县城关镇鳝塘村人", "鳝塘村"),
])
def test_places_in_context(note: str, value: str) -> None:
    _found(note, value, "LOCATION")


@pytest.mark.parametrize("note", [
    "又投资3000多万元新建各类小型水利工程。",  # 新建 is also a district (南昌)
    "对辖区内的城区管理、社区服务。",
    "必须由村集体和县、乡水利部门统一发放。",
    "目前，这个村已成为全县出名的富裕村。",
    "全县多个村全部通电。",
    "实施科教兴国战略。",
])
def test_words_that_are_also_place_names_are_left_alone(note: str) -> None:
    assert T.scrub(note, "zh") == note


@pytest.mark.parametrize(("note", "names"), [
    ("（新华社记者樊如钧摄）", ["樊如钧"]),
    ("钱其琛在讲话中指出，两国关系良好。", ["钱其琛"]),
    ("由王建国签字。王建国系患者之子。", ["王建国"]),  # found once, replaced everywhere in the note
    ("陪同人员有李铁映、贾庆林、曾庆红等。", ["贾庆林", "曾庆红"]),  # an enumeration next to a name
])
def test_names_in_reports_repeats_and_enumerations(note: str, names: list[str]) -> None:
    spans = T.detect(note, "zh")
    for name in names:
        for k in [i for i in range(len(note)) if note.startswith(name, i)]:
            assert any(s.start <= k and k + len(name) <= s.end and s.type == "NAME" for s in spans), (name, spans)


def test_full_width_folding_keeps_offsets() -> None:
    note = "电话：１３８－００１３－８０００，ＡＢＣ"
    folded = Z.fold_width(note)
    assert len(folded) == len(note) and folded.endswith("138-0013-8000，ABC")
    assert Z.fold_width("无全角") == "无全角"


def test_the_vocabulary_ships_places_and_words() -> None:
    assert "杭州市" in Z.PLACES and "杭州" in Z.PLACE_SHORT and "浙江省" not in Z.PLACES
    assert {"陈旧", "方法", "病史", "分钟", "高脂血症"} <= Z.WORDS
    assert {"新建", "城区", "大连", "和县"} <= Z.PLACE_AMBIGUOUS


# --- round 3: names that are also words, given-name characters, foreign names, the uncertain_names option ---


@pytest.mark.parametrize(("note", "name"), [
    ("李鹏总理在北京考察。", "李鹏"),  # jieba lists 李鹏 as a word too (class n): a name before 总理
    ("，李鹏说，", "李鹏"),
    ("现年51岁的王建国出生在河南。", "王建国"),  # after 岁的
    ("查办张丽娟，会不会影响企业？", "张丽娟"),  # no left context: 丽, 娟 are given-name characters
    ("美国国防部长科恩说，", "科恩"),  # transliteration characters after a title
    ("布莱尔表示，英国支持。", "布莱尔"),
    ("访问的贝宁总统马蒂厄·克雷库一行", "马蒂厄·克雷库"),  # a name in parts joined by ·
])
def test_names_that_are_words_given_name_characters_and_foreign_names(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize("note", [
    "曾祖父患高血压，曾孙体健。",  # 曾祖, 曾孙: name-tagged entries of jieba that start longer words
    "予美托洛尔、卡托普利口服。",  # drug names of transliteration characters: no title, no verb of speech
    "杜仲、麻仁煎服。",
    "温馨提示：请按时服药。",
    "查明原因后再行手术。",
    "多巴胺静脉泵入，阿尔茨海默病待排。",
    "给予维生素B12、叶酸治疗。",
])
def test_words_like_names_are_left_alone(note: str) -> None:
    assert T.scrub(note, "zh") == note


def test_uncertain_names_finds_names_without_context() -> None:
    note = "术后见到赵阳在病房。"
    assert "赵阳" in T.scrub(note, "zh")  # 到 is no context for a name
    assert T.scrub(note, "zh", uncertain_names=True) == "术后见到[NAME]在病房。"


@pytest.mark.parametrize("note", CLEAN_ZH)
def test_uncertain_names_keeps_ordinary_clinical_chinese(note: str) -> None:
    assert T.scrub(note, "zh", uncertain_names=True) == note


# --- round 4: three-character names whose characters also form words, places across words and provinces ---


@pytest.mark.parametrize(("note", "name"), [
    ("主治医师刘前刚签字。", "刘前刚"),  # after a role, before the end: 前 is no function character here
    ("（本报记者许宏治）", "许宏治"),
    ("江泽民主席指出，", "江泽民"),  # 民主 is a word, but 主席 follows
    ("邓小平等老一辈革命家", "邓小平"),  # 平等 is a word, but 等 ends a name
    ("，温家宝在贵州考察。", "温家宝"),  # 温家 is a word, 温家宝 is none and 宝 is a given-name character
    ("党和国家领导人江泽民、李鹏出席。", "江泽民"),  # no word before it, one given-name character, then 、
])
def test_three_character_names_next_to_words(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize("note", [
    "老人高兴地说：很好。",  # 高兴 is a word: no name after 老人
    "农村建网应当以市场为导向。",  # 农村 is a word and 网 no end of a name
    "莫桑比克政府表示欢迎。",  # inside a run of transliteration characters
    "患者告诉医生，头痛加重。",  # 诉 in 告诉 is no verb of speech after a name
    "护士长期观察，患者诉头痛。",
])
def test_words_next_to_surnames_are_no_names(note: str) -> None:
    assert T.scrub(note, "zh") == note


@pytest.mark.parametrize(("note", "value"), [
    ("（河南开封市牛建海）", "开封市"),  # 河南 is matched first: 南开 (a district) does not hide 开封市
    ("来到溧水县柘塘镇。", "溧水县"),  # the suffix of a unit the current division list no longer has
    ("银川、南宁、合肥等地", "合肥"),  # a listed place before it makes 合肥 (also a word) a place
    ("工作在省会长春安装工地上", "长春"),  # 会长 is a word, but 省会 is one too
    ("挑战济南军区队", "济南"),  # 南军 is a word, but 军区 is one too
])
def test_places_across_words_and_provinces(note: str, value: str) -> None:
    _found(note, value, "LOCATION")


@pytest.mark.parametrize("note", ["早餐吃三明治。", "许多公司和政治家出席。", "患者为河南人。"])
def test_place_names_inside_words_stay(note: str) -> None:
    assert T.scrub(note, "zh") == note


@pytest.mark.parametrize(("note", "name"), [
    ("据报道，克林顿表示将访华。", "克林顿"),  # after punctuation, before a verb of speech
    ("穆巴拉克和萨达姆的会谈", "萨达姆"),  # between function characters
    ("纳扎尔巴耶夫会见了代表团。", "纳扎尔巴耶夫"),  # at the start of a clause, before a verb of action
    ("患者阿尔希波夫，男，45岁。", "阿尔希波夫"),
])
def test_foreign_names_without_a_title(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize("note", [
    "予美托洛尔、卡托普利降压，阿莫西林、头孢克肟抗感染。",  # drug names are transliterations too
    "奥美拉唑护胃，氯吡格雷抗血小板。",
    "既往帕金森病史，阿尔茨海默病，克罗恩病。",  # eponyms of diseases are no patient's name
    "诊断：帕金森综合征。",
    "伊拉克、乌克兰和哈萨克斯坦的代表",  # countries (ISO 3166-1 in Chinese) are no names
    "患者为伊拉克人。",
])
def test_drugs_eponyms_and_countries_are_no_foreign_names(note: str) -> None:
    assert "[NAME]" not in T.scrub(note, "zh")


# --- round 6: cities abroad, streets and villages without a place before them ---


@pytest.mark.parametrize(("note", "value"), [
    ("患者近期在纽约旅居。", "纽约"),
    ("1月3日前往莫斯科。", "莫斯科"),
    ("患者来自雅加达，发热3天。", "雅加达"),
    ("半月前飞往马尼拉。", "马尼拉"),
    ("会议在伊斯坦布尔举行。", "伊斯坦布尔"),
    ("上月飞往萨拉克斯。", "萨拉克斯"),  # not listed: a transliteration run after a verb of travel
])
def test_a_city_abroad_with_a_place_context(note: str, value: str) -> None:
    _found(note, value, "LOCATION")


def test_the_travel_rule_is_not_the_city_list() -> None:
    assert "萨拉克斯" not in Z.FOREIGN_CITIES and "莫斯科" in Z.FOREIGN_CITIES


@pytest.mark.parametrize("note", [
    "莫斯科说他不同意。",  # no place context: a city name alone is not replaced as a place
    "东京审判的历史。",
    "雅加达尔表示同意。",
])
def test_a_city_abroad_without_a_place_context_is_no_location(note: str) -> None:
    assert not [s for s in T.detect(note, "zh") if s.type == "LOCATION"]


@pytest.mark.parametrize(("note", "value"), [
    ("家住笋岗路3号，诉头痛。", "笋岗路"),
    ("笋岗路12号楼302室。", "笋岗路"),
    ("患者位于沙湾街的住所。", "沙湾街"),
])
def test_a_street_without_a_place_before_it(note: str, value: str) -> None:
    # The address rules may take the street with its number (ADDRESS): either way it is replaced.
    assert value not in T.scrub(note, "zh")


@pytest.mark.parametrize("note", [
    "患者在公路上摔倒。", "在回家路上跌倒。", "在这条路上行走时胸痛。", "在马路边晕倒。", "一路走来。",
    "在胡同里摔倒。",
])
def test_roads_in_ordinary_text_stay(note: str) -> None:
    assert T.scrub(note, "zh") == note


@pytest.mark.parametrize(("note", "value"), [
    ("如今的双泾村，已成为文明小区。", "双泾村"),
    ("患者常去邻近的柏溪镇赶集。", "柏溪镇"),
])
def test_a_village_after_ordinary_text(note: str, value: str) -> None:
    _found(note, value, "LOCATION")


@pytest.mark.parametrize("note", [
    "建设新农村。", "发展乡镇企业。", "城镇居民医保。", "给予镇静治疗。", "患者回乡后发热。", "全国文明村镇。",
])
def test_ordinary_words_with_village_suffixes_stay(note: str) -> None:
    assert T.scrub(note, "zh") == note


# --- names by character statistics, glued lists, surnames before a title ---


@pytest.mark.parametrize(("note", "name"), [
    ("昨天我们拜访了王海涛的家人。", "王海涛"),  # a surname and two plausible given-name characters, no cue
    ("会议由赵志远主持，孙丽萍、周建华列席。", "周建华"),
])
def test_a_surname_and_two_plausible_given_characters(note: str, name: str) -> None:
    _found(note, name, "NAME")


def test_a_list_of_names_without_separators() -> None:
    note = "出席的有刘建华王海涛孙丽萍。"
    for name in ("刘建华", "王海涛", "孙丽萍"):
        _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "value"), [
    ("陪同张主任查房。", "张"),
    ("今天刘副院长来看望患者。", "刘"),
    ("老闫说他最近睡眠不好。", "老闫"),
    ("请小邹过来。", "小邹"),
])
def test_a_surname_before_a_title_and_old_or_young_before_a_surname(note: str, value: str) -> None:
    _found(note, value, "NAME")


@pytest.mark.parametrize("note", [
    "阿莫西林胶囊口服。",       # a drug: no name inside a transliteration
    "老年患者，小儿科会诊。",    # 老年, 小儿 are words
    "国家主席出访。",            # a title with no surname before it
])
def test_no_names_from_titles_words_or_drugs(note: str) -> None:
    assert "[NAME]" not in T.scrub(note, "zh")


@pytest.mark.parametrize(("note", "value"), [
    ("患者今日出院，嘱门诊随访。（周建华孙丽萍）", "周建华孙丽萍"),  # a byline in brackets at the end
    ("出院小结\n宋立新\n", "宋立新"),                                # a name alone on a line (a signature)
    ("由州长威尔逊主持。", "威尔逊"),                                 # a transliteration after a title's end
    ("今天与罗伯逊见面。", "罗伯逊"),                                 # ... or between ordinary characters
])
def test_bylines_signatures_and_foreign_names(note: str, value: str) -> None:
    _found(note, value, "NAME")


def test_a_bracket_or_a_line_that_is_a_word_stays() -> None:
    assert T.scrub("诊断明确（高血压）", "zh") == "诊断明确（高血压）"
    assert T.scrub("出院小结\n方法\n", "zh") == "出院小结\n方法\n"


@pytest.mark.parametrize(("note", "value"), [
    ("复诊。４日，患者诉头痛。", "４日"),          # a day opening a clause
    ("本月７日，患者再次入院。", "７日"),
    ("自去年７月以来反复咳嗽。", "７月"),          # since July: a date, not a duration
    ("农历正月初四发病。", "正月"),
    ("拟于１８日前往上级医院。", "１８日"),
])
def test_days_and_months_in_more_positions(note: str, value: str) -> None:
    _found(note, value, "DATE")


@pytest.mark.parametrize("note", ["发热2日，咳嗽。", "术后3月以内复查。"])
def test_durations_stay_after_the_new_date_positions(note: str) -> None:
    assert "[DATE]" not in T.scrub(note, "zh")


@pytest.mark.parametrize(("note", "value"), [
    ("患者来自东阳县，务农。", "东阳县"),          # a county under its former name (jieba: now 东阳市)
    ("去年到大连车站接人。", "大连"),              # a place that is also a word, before what a place has
    ("患者来自顺德，务农。", "顺德"),              # a district's short form that jieba tags as another word
])
def test_places_under_former_names_and_with_more_contexts(note: str, value: str) -> None:
    _found(note, value, "LOCATION")


def test_a_list_of_names_with_enumeration_commas() -> None:
    note = "参加会诊的有刘建国、孙丽萍、周海涛等。"
    for name in ("刘建国", "孙丽萍", "周海涛"):
        _found(note, name, "NAME")


@pytest.mark.parametrize("note", ["既往高血压、糖尿病、冠心病史。", "检查肝、肾功能。"])
def test_lists_of_conditions_are_no_names(note: str) -> None:
    assert "[NAME]" not in T.scrub(note, "zh")


def test_a_given_name_with_a_function_character_after_a_title() -> None:
    _found("主治医师钱其琛查房。", "钱其琛", "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("昨天萧振宇来复诊。", "萧振宇"),   # a rarer surname (class s of the data file)
    ("昨天于振宇来复诊。", "于振宇"),   # a surname that is also a function word, two given-name characters
])
def test_rarer_and_ambiguous_surnames_with_two_given_name_characters(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("家属签字：罗建平（男，52岁）。", "罗建平"),   # a name before its sex in brackets
    ("陪护人员邓玉（女）。", "邓玉"),
])
def test_a_name_before_its_sex_in_brackets(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("李鹏在病房陪护。", "李鹏"),          # a name that is also a word, as the subject of a clause
    ("塔克在门诊随访。", "塔克"),          # two transliteration characters as the subject of a clause
])
def test_names_as_the_subject_of_a_clause(note: str, name: str) -> None:
    _found(note, name, "NAME")


def test_a_name_in_parts_joined_by_a_dot_whatever_its_characters() -> None:
    _found("会诊专家为拉吉夫·甘地教授。", "拉吉夫·甘地", "NAME")
    assert "[NAME]" not in T.scrub("清·龚自珍", "zh").split("·")[0]


@pytest.mark.parametrize(("note", "name"), [
    ("院长孙振宇、科长何平出席。", "孙振宇"),
    ("护士长孙丽萍签字。", "孙丽萍"),
])
def test_a_surname_after_a_title_ending_in_the_first_character_of_a_compound_surname(note: str, name: str) -> None:
    # 长孙 is a compound surname, but here 长 ends the title.
    spans = T.detect(note, "zh")
    assert any(note[s.start:s.end] == name and s.type == "NAME" for s in spans), spans


@pytest.mark.parametrize(("note", "name"), [
    ("昨日探视了赵竞蒙。", "赵竞蒙"),
    ("下午又去看望了周友才。", "周友才"),
])
def test_a_surname_and_two_characters_that_form_no_word_before_the_end_of_a_clause(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "place"), [
    ("患者昨日抵达拉萨。", "拉萨"),  # 达拉 (a city abroad, no context) hid 拉萨
    ("他在约旦首都安曼工作。", "安曼"),  # 都安 (a county's short form, half of 首都) hid 安曼
])
def test_a_place_hidden_by_a_rejected_overlapping_one(note: str, place: str) -> None:
    _found(note, place, "LOCATION")


@pytest.mark.parametrize(("note", "place"), [
    ("转入大同三医院继续治疗。", "大同"),
    ("一名大连旅客突发胸痛。", "大连"),
])
def test_a_place_that_is_also_a_word_before_an_institution_or_its_people(note: str, place: str) -> None:
    _found(note, place, "LOCATION")


@pytest.mark.parametrize(("note", "name"), [
    (" 为此，周恩华有一次专程来院复查。", "周恩华"),
    ("检查完毕，吴德顺抓药后离院。", "吴德顺"),
])
def test_a_surname_and_two_characters_at_the_start_of_a_clause(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("经调查，张某负主要责任。", "张某"),
    ("患者王某某于今晨入院。", "王某某"),
])
def test_a_surname_and_mou_is_an_anonymised_person(note: str, name: str) -> None:
    _found(note, name, "NAME")


def test_a_name_that_is_also_a_word_after_a_title_before_a_word_of_time() -> None:
    _found("科主任黄菊今天上午查房。", "黄菊", "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("由宁志刚签字。", "宁志刚"),  # 宁: a rarer surname by the looser measure of the data file
    ("家属万建华签字。", "万建华"),  # 万: also a number, a surname before two given-name characters
])
def test_rarer_surnames_with_two_given_name_characters(note: str, name: str) -> None:
    _found(note, name, "NAME")


@pytest.mark.parametrize(("note", "name"), [
    ("患者之女达莎在外地工作。", "达莎"),
    ("。亚辛在病房外等候。", "亚辛"),
])
def test_two_transliteration_characters_as_subject_or_object(note: str, name: str) -> None:
    _found(note, name, "NAME")


def test_two_transliteration_characters_that_are_a_word_or_half_of_one_are_no_name() -> None:
    for note in ("他连声说：“谢谢！”", "古埃及第六王朝的遗址。"):
        assert not [s for s in T.detect(note, "zh") if s.type == "NAME"], note


def test_a_foreign_name_with_one_strict_transliteration_character_after_a_title() -> None:
    _found("主治医师赖尔登。", "赖尔登", "NAME")


def test_words_of_address_after_a_name() -> None:
    _found("邻居王俊大娘来探视。", "王俊", "NAME")


@pytest.mark.parametrize(("note", "place"), [
    ("患者常往返大同、太原两地。", "大同"),  # the first of a list of places
    ("海口 -0.4 -3.3", "海口"),  # alone at the head of a table row
    ("天祝位于祁连山区。", "天祝"),
])
def test_an_ambiguous_place_first_in_a_list_of_places_or_before_a_word_of_location(note: str, place: str) -> None:
    _found(note, place, "LOCATION")


def test_a_list_of_ordinary_words_that_are_also_places_is_no_list_of_places() -> None:
    for note in ("新建、扩建病房。", "患者常往返城区、郊区两地。"):
        assert not [s for s in T.detect(note, "zh") if s.type == "LOCATION"], note


def test_characters_of_city_names_abroad_join_the_transliteration_class() -> None:
    # 奈 and 宾 are frequent in GeoNames' Chinese names of cities abroad and rare in jieba's other words.
    assert {"奈", "宾"} <= Z.LOOSE_TRANSLIT


def test_names_glued_into_one_run_after_a_colon() -> None:
    note = "参加会诊：吴德顺周建华郑晓明"
    spans = T.detect(note, "zh")
    got = {note[s.start:s.end] for s in spans if s.type == "NAME"}
    assert {"吴德顺", "周建华", "郑晓明"} <= got, spans


def test_a_surname_and_two_characters_glued_to_text_that_goes_on_with_a_word() -> None:
    # 近 is no given-name character, but the three stand before an ordinary word (指挥) and form none.
    note = "那年冬天钱近山指挥全团突围"
    got = {note[s.start:s.end] for s in T.detect(note, "zh") if s.type == "NAME"}
    assert "钱近山" in got


def test_a_cue_name_stops_where_another_surname_and_given_name_start() -> None:
    note = "医师：郑德顺王建华"
    got = {note[s.start:s.end] for s in T.detect(note, "zh") if s.type == "NAME"}
    assert {"郑德顺", "王建华"} <= got


def test_a_run_of_names_may_hold_a_name_that_is_a_word_and_be_cut_before_what_it_cannot_split() -> None:
    # 万里 is an ordinary word; in a run dense in names it is a name too.
    note = "出席：陈德顺万里刘华清周永红"
    got = {note[s.start:s.end] for s in T.detect(note, "zh") if s.type == "NAME"}
    assert {"陈德顺", "万里", "刘华清", "周永红"} <= got
    assert Z._split_names("张伟明李建华王丽娟他们都") == [(0, 3), (3, 6), (6, 9)]


def test_a_foreign_name_with_one_character_common_in_other_words() -> None:
    # 安 is in many transliterated names of jieba but too common elsewhere for the run classes: one may stand
    # inside a run of them.
    assert "安" in Z.GAP_TRANSLIT and "安" not in Z.TRANSLIT_CHARS
    note = "外长阿拉安特表示，双方应当加强合作。"
    got = {note[s.start:s.end] for s in T.detect(note, "zh") if s.type == "NAME"}
    assert "阿拉安特" in got, got


@pytest.mark.parametrize(("note", "name"), [
    ("我们在车站见到了卡琳娜那位朋友", "卡琳娜"),  # 那位 is a word after the run
    ("欢迎主席密拉特，双方会谈", "密拉特"),  # a character of class v first, after a title
])
def test_a_foreign_name_ending_before_a_word_or_led_by_a_common_character_after_a_title(note: str, name: str) -> None:
    got = {note[s.start:s.end] for s in T.detect(note, "zh") if s.type == "NAME"}
    assert name in got, got


def _dates_full_scan(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in Z._DATE_RX.finditer(text)]


@pytest.mark.parametrize("note", [
    "患者于二〇〇三年十二月三十一日入院，术后3日出院，5月17号复诊。",
    "本次住院期间病情平稳，生命体征正常，饮食睡眠可，大小便正常。1998年元月3日随访，每日一次，3日后复查。",
    "日前收到通知，月底前完成检查；４日，本月７日，自一日起至三十日止。",
    "十二月",
    "日",
])
def test_dates_scanned_from_each_month_or_day_as_the_whole_note(note: str) -> None:
    # The date pass starts its scan a few characters before each 月 or 日: the same dates as a scan of it all.
    out: list[tuple[int, int, int, str]] = []
    Z._find_dates(note, out)
    assert [(s, e) for s, e, _, _ in out] == _dates_full_scan(note)
    assert out or "日" in note


@pytest.mark.parametrize("note", [
    "电话：１３８－００１３－８０００，１２月３１日，ＡＢｃ＠ｘ．ｃｎ ＃３＋１／２",
    "２" * 5000 + "月",  # a long note takes another path
    "无全角字符的中文。",
])
def test_full_width_folding_maps_each_character_in_place(note: str) -> None:
    folded = Z.fold_width(note)
    assert len(folded) == len(note)
    assert folded == "".join(chr(ord(c) - 0xFEE0) if c in Z._WIDE else c for c in note)


@pytest.mark.parametrize("note", [
    "患者家住解放大道18号院，后迁至中山路3号、人民街五号，同事住在胡同里。",
    "沿着笋岗路3号往东走，到东门路，同时经过长江路１２号。",
    "道路通畅，同意出院。",
])
def test_street_numbers_scanned_from_each_suffix_as_the_whole_note(note: str) -> None:
    # The pattern of a name before a number starts its scan a few characters before each street suffix.
    text = Z.fold_width(note)
    assert ([m.span() for m in Z._finditer_near(Z._STREET_NO_RX, text, "路街巷同道", 4)]
            == [m.span() for m in Z._STREET_NO_RX.finditer(text)])


def test_context_words_grouped_by_character_give_the_answer_of_the_whole_list() -> None:
    # The tests of a context word before or after a position look only at the words sharing its character.
    words = ("主任", "主席", "同志", "说", "副主任")
    starts, ends = Z._by_char(words), Z._by_char(words, last=True)
    text = "副主任李明同志说，主席"
    for j in range(len(text) + 2):
        assert Z._starts(text, j, starts) == text.startswith(words, j), j
    for i in range(len(text) + 1):
        assert Z._ends(text, i, ends) == text.endswith(words, 0, i), i


@pytest.mark.parametrize("note", [
    "病情稳定。\n（周建华）",
    "（周建华）\n复查血常规。（孙丽）",
    "\n\n周建华\n  \n孙丽 \n复查",
    " \n（周建华） \n（家属）在场（孙丽）",
    "周建华\n复查（一周后）（孙丽萍）\n",
])
def test_bylines_are_found_as_the_whole_note_pattern_finds_them(note: str) -> None:
    # The short paths (a closing bracket that ends its line, a line break before a line) against the patterns
    # run over the whole note.
    got = [m.span(1) for m in Z._bracket_bylines(note)]
    assert got == [m.span(1) for m in Z._BYLINE_BRACKET.finditer(note)]
    first = Z._BYLINE_LINE.match(note)
    lines = [first.span(1)] if first is not None and "\n" not in note[:first.start(1)] else []
    lines += [m.span(1) for m in Z._BYLINE_NEXT_LINE.finditer(note)]
    assert lines == [m.span(1) for m in Z._BYLINE_LINE.finditer(note)]
    assert got or lines


@pytest.mark.parametrize("note", [
    "每日三次，2023年3月5日复诊，术后3日拆线。",
    "本月７日，患者于十五日晚入院，1998年元月3日出生，发热2日，",
    "日日月月，住院第5日，至31日止，一月后复查\n4日，",
    "1月",
])
def test_dates_found_near_their_anchors_as_by_the_whole_note(note: str) -> None:
    # The bounded search after each 月 or 日 against the pattern run over the whole note.
    got = [m.span() for m in Z._finditer_near(Z._DATE_RX, note, "月日", 7, Z._DATE_EXTENT)]
    assert got == [m.span() for m in Z._DATE_RX.finditer(note)]
